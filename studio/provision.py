"""First-start provisioning: a workspace's labeling project and its demo data. Idempotent: run it any number of
times. `studio up` provisions every configured project (`cfg.projects`), each through its own workspace.

The project is found by id or title, or created from its labeling config. Demo data is imported only into a
project that has no tasks, so a second `make up` never duplicates anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from studio.errors import DataError, LabelingConfigError
from studio.importer import build_tasks, read_table
from studio.labeling import load_labeling_config, parse_labeling_config, with_choices
from studio.labelstudio.client import ProjectInfo
from studio.types import ProgressFn
from studio.workspace import Workspace

SIMULATED_ANNOTATOR = "simulated-annotator@demo.local"


@dataclass
class ProvisionResult:
    project: ProjectInfo
    created: bool
    imported: int


def ensure_project(ws: Workspace, *, classes_from: pd.Series | None = None) -> tuple[ProjectInfo, bool]:
    """The workspace's project on Label Studio (by id, else title), created from its labeling config when missing:
    (project, created). A classification template without classes takes them from `classes_from`."""
    spec = ws.spec
    if spec.project_id:
        return ws.client.get_project(spec.project_id), False
    found = ws.client.find_project(spec.title)
    if found is not None:
        return found, False
    schema = load_labeling_config(ws.cfg.path(spec.labeling_config))
    xml = schema.xml
    if not schema.classes and schema.control_type in ("choices", "labels"):  # an answer (<TextArea>) has none
        if classes_from is None:
            raise LabelingConfigError(
                f"{spec.labeling_config} lists no classes and there is no data to take them from.",
                hint=f"add <Choice value=\"...\"/> children to the config, or enable [{spec.demo_section}]")
        xml = with_choices(xml, sorted({str(c) for c in classes_from if str(c).strip()}))
    parse_labeling_config(xml)  # fail here, with a clear message, rather than inside Label Studio
    return ws.client.create_project(spec.title, xml), True


def provision(ws: Workspace, *, progress: ProgressFn | None = None) -> ProvisionResult:
    """Find or create the workspace's project; import its demo data (when enabled) into it while it is empty."""
    demo = ws.spec.demo
    table = read_table(ws.cfg.path(demo.file)) if demo.enabled else None
    if table is not None:
        for what, column in (("text_column", demo.text_column), ("label_column", demo.label_column)):
            if column not in table.columns:
                raise DataError(f"The demo file {demo.file} has no column '{column}' ([{ws.spec.demo_section}] "
                                f"{what}); its columns: {', '.join(map(str, table.columns))}.",
                                hint=f"set [{ws.spec.demo_section}] {what} to one of them")
    classes = table[demo.label_column] if table is not None else None
    project, created = ensure_project(ws, classes_from=classes)
    if table is None or ws.client.project_task_count(project.id) > 0:
        return ProvisionResult(project, created, 0)
    schema = parse_labeling_config(project.label_config)
    # The simulated second opinion is a label, not task data: keep it out of what annotators see.
    seconds = table.pop("second_opinion") if "second_opinion" in table.columns else None
    annotated = table.head(demo.annotated)
    rest = table.iloc[demo.annotated:].drop(columns=[demo.label_column])
    first, _, last = demo.annotator_name.partition(" ")
    ws.client.create_user(demo.annotator, first_name=first, last_name=last)
    tasks = build_tasks(annotated, schema, text_column=demo.text_column, label_column=demo.label_column,
                        annotator_email=demo.annotator)
    if seconds is not None:
        ws.client.create_user(SIMULATED_ANNOTATOR, first_name="Simulated", last_name="annotator")
        for task, second in zip(tasks, seconds.head(demo.annotated)):
            if isinstance(second, str) and second.strip():
                task["annotations"].append({"result": schema.result(second.strip()),
                                            "completed_by": {"email": SIMULATED_ANNOTATOR}})
    tasks += build_tasks(rest, schema, text_column=demo.text_column)
    imported = ws.client.import_tasks(project.id, tasks, progress=progress)
    return ProvisionResult(project, created, imported)
