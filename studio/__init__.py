"""The data side of the studio: Label Studio, snapshots, quality, review, curation, active learning, UI."""

__version__ = "0.1.0"
