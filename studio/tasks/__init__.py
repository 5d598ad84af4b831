"""Task kinds: one module per kind of labeling work, chosen from the labeling config. See base.py for the
contract every stage asks."""

from __future__ import annotations

from studio.labeling import LabelingSchema
from studio.tasks.base import NO_CLASS, STAGES, TaskKind, usable_votes
from studio.tasks.classification import MultiLabel, SingleLabel
from studio.tasks.generation import Generation
from studio.tasks.spans import Spans

#: kind name -> class; the labeling config's `schema.task` names one.
KINDS: dict[str, type[TaskKind]] = {k.name: k for k in (SingleLabel, MultiLabel, Spans, Generation)}


def kind_for(schema: LabelingSchema) -> TaskKind:
    """The task kind of a parsed labeling config."""
    return KINDS[schema.task](schema)


def kind_named(name: str, classes: list[str] | tuple[str, ...]) -> TaskKind:
    """A kind for in-memory data with these classes (tests, benchmarks, imports without a project): the schema is
    a minimal config of that kind (tag names "label" on "text")."""
    from studio.labeling import parse_labeling_config
    from xml.sax.saxutils import quoteattr

    if name not in KINDS:
        from studio.errors import ConfigError, did_you_mean

        raise ConfigError(f"Task kind {name!r} is not known.{did_you_mean(name, KINDS)}",
                          hint=f"use one of: {', '.join(KINDS)}")
    if name == "generation":
        xml = '<View><Text name="text" value="$text"/><TextArea name="response" toName="text"/></View>'
        return kind_for(parse_labeling_config(xml))
    if name == "spans":
        body = "".join(f"<Label value={quoteattr(c)}/>" for c in classes)
        xml = f'<View><Labels name="label" toName="text">{body}</Labels><Text name="text" value="$text"/></View>'
    else:
        body = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
        choice = "multiple" if name == "multi_label" else "single"
        xml = (f'<View><Text name="text" value="$text"/>'
               f'<Choices name="label" toName="text" choice="{choice}">{body}</Choices></View>')
    return kind_for(parse_labeling_config(xml))


__all__ = ["KINDS", "NO_CLASS", "STAGES", "Generation", "MultiLabel", "SingleLabel", "Spans", "TaskKind", "kind_for",
           "kind_named", "usable_votes"]
