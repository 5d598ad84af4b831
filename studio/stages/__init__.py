"""The per-stage services of a workspace, one module each, shared by the app, the CLI and the ML backend.

Each is a small class over a `studio.workspace.Workspace` (the connection, the paths, the snapshot store, the
decision log, the embeddings every stage shares) and reached as a lazy attribute of it:

    ws.quality    quality.py    label-quality checks, stored reports, cross-validation jobs
    ws.review     review.py     auto-fix, re-review requests and what came back, outdated decisions
    ws.curation   curation.py   the saved Curate settings, curating and exporting a data version
    ws.training   training.py   the snapshot to train on, starting the training job
    ws.active     active.py     scoring the unlabeled pool, pushing it, the fast learner

They import workspace-level things, never the other way round (the workspace imports each one lazily).
"""
