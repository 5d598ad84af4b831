"""Read what the studio needs from a Label Studio labeling config (XML): never hard-code tag names.

The text field, the label tag, its classes and single/multi choice all come from the config, parsed with
label-studio-sdk's `LabelInterface`. A config with a `<TextArea>` answering a `<Text>` (and no `<Choices>` or
`<Labels>`) is an instruction -> response (generation) project: the text is the prompt, the answer the target.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import quoteattr

from studio.errors import LabelingConfigError

Task = Literal["single_label", "multi_label", "spans", "generation"]
_CLASSIFICATION_TAGS = {"choices"}
_SPAN_TAGS = {"labels"}
_GENERATION_TAGS = {"textarea"}


@dataclass(frozen=True)
class LabelingSchema:
    """What a labeling config means for the studio.

    text_field: the task data key holding the text ("text" for value="$text").
    from_name / to_name: the control tag's name and the object it labels, as written in every result.
    classes: the label values in config order (index = class id everywhere downstream).
    task: the task kind's name (studio/tasks/): "single_label" (Choices, single), "multi_label" (Choices
      choice="multiple"), "spans" (Labels: named entities) or "generation" (a TextArea answering the Text).
    context_field: generation only: the task data key of a second <Text> shown beside the prompt ("" if none).
    """

    xml: str
    text_field: str
    from_name: str
    to_name: str
    control_type: str  # the result "type": "choices", "labels" or "textarea"
    classes: tuple[str, ...]
    task: Task
    context_field: str = ""

    @property
    def kind(self):
        """The task kind (studio.tasks.TaskKind) every stage asks what to do."""
        from studio.tasks import kind_for

        return kind_for(self)

    @property
    def config_hash(self) -> str:
        """sha256 of the XML with whitespace collapsed: the same config always hashes the same."""
        return hashlib.sha256(re.sub(r"\s+", " ", self.xml).strip().encode()).hexdigest()[:16]

    def result(self, labels: list[str] | str) -> list[dict[str, Any]]:
        """A Label Studio annotation/prediction `result` choosing these labels (classification configs)."""
        values = [labels] if isinstance(labels, str) else list(labels)
        return [{"from_name": self.from_name, "to_name": self.to_name, "type": self.control_type,
                 "value": {self.control_type: values}}]

    def labels_from_result(self, result: list[dict[str, Any]]) -> list[str]:
        """The labels an annotation's `result` chose for our control, in order, de-duplicated."""
        out: list[str] = []
        for item in result or []:
            if item.get("from_name") != self.from_name:
                continue
            for value in (item.get("value") or {}).get(self.control_type, []) or []:
                if value not in out:
                    out.append(value)
        return out


def parse_labeling_config(xml: str, *, allow_no_classes: bool = False) -> LabelingSchema:
    """Parse a labeling config; raise LabelingConfigError saying what is missing if the studio can't use it.

    A `<Labels>` (named-entity) config must name its entity types; allow_no_classes: accept a template whose
    classes are filled in from the data (with_choices)."""
    from label_studio_sdk.label_interface import LabelInterface

    if not xml or not xml.strip():
        raise LabelingConfigError("The labeling config is empty.", hint="give a <View> with <Text> and <Choices>")
    try:
        interface = LabelInterface(xml)
    except Exception as exc:  # the SDK raises several XML/validation types; all mean "not parseable"
        raise LabelingConfigError(
            f"The labeling config is not valid Label Studio XML: {exc}",
            hint="check it in Label Studio's labeling interface editor (Settings > Labeling Interface)",
        ) from None
    texts = {o.name: o for o in interface.objects if o.tag.lower() in {"text", "hypertext"}}
    if not texts:
        raise LabelingConfigError(
            "The labeling config has no <Text> object tag, so the studio cannot tell which field holds the text.",
            hint='add <Text name="text" value="$text"/>',
        )
    controls = [c for c in interface.controls if c.tag.lower() in _CLASSIFICATION_TAGS | _SPAN_TAGS
                and any(t in texts for t in c.to_name)]
    if not controls:
        answers = [c for c in interface.controls if c.tag.lower() in _GENERATION_TAGS]
        if answers:
            return _generation_schema(xml, answers[0], texts)
        found = ", ".join(sorted({f"<{c.tag}>" for c in interface.controls})) or "none"
        raise LabelingConfigError(
            f"The labeling config has no classification tag (<Choices> or <Labels>) and no answer (<TextArea>) "
            f"attached to a <Text>; control tags found: {found}.",
            hint='add <Choices name="label" toName="text"> with a <Choice value="..."/> per class, or '
                 '<TextArea name="response" toName="prompt"/> for instruction -> response data',
        )
    control = controls[0]  # like label-studio-ml-backend's get_first_tag_occurence
    to_name = next(t for t in control.to_name if t in texts)
    value = texts[to_name].value or ""
    if not value.startswith("$") or len(value) < 2:
        raise LabelingConfigError(
            f"<Text name={to_name!r}> has value={value!r}; expected a task field like '$text'.",
            hint='set value="$text" (or the name of your data column)',
        )
    tag = control.tag.lower()
    if tag in _SPAN_TAGS and not control.labels and not allow_no_classes:
        raise LabelingConfigError(
            f"The named-entity labeling config has no entity types: <Labels name={control.name!r}> holds no "
            "<Label> tags, so no span could be labeled.",
            hint='add one <Label value="person"/> (etc.) per entity type inside <Labels>')
    if tag in _SPAN_TAGS:
        task: Task = "spans"
    else:
        task = "multi_label" if (control.attr.get("choice") or "single") == "multiple" else "single_label"
    return LabelingSchema(xml=xml, text_field=value[1:], from_name=control.name, to_name=to_name,
                          control_type=tag, classes=tuple(control.labels or ()), task=task)


def _field(obj: Any) -> str:
    """The task data key of an object tag (value="$prompt" -> "prompt"); raises when it is not a $field."""
    value = obj.value or ""
    if not value.startswith("$") or len(value) < 2:
        raise LabelingConfigError(
            f"<Text name={obj.name!r}> has value={value!r}; expected a task field like '$text'.",
            hint='set value="$text" (or the name of your data column)',
        )
    return value[1:]


def _generation_schema(xml: str, control: Any, texts: dict[str, Any]) -> LabelingSchema:
    """An instruction -> response config: the <TextArea> `control` answers the <Text> it points at (the prompt);
    another <Text>, if any, is the context."""
    prompt = next((t for t in control.to_name if t in texts), None)
    if prompt is None:
        raise LabelingConfigError(
            f"<TextArea name={control.name!r}> points at toName={','.join(control.to_name) or '(nothing)'}, which "
            f"is no <Text> of the config, so there is no prompt to answer (texts: {', '.join(texts) or 'none'}).",
            hint=f'set toName to the prompt\'s <Text> name, e.g. <TextArea name="{control.name}" toName="prompt"/>')
    others = [t for name, t in texts.items() if name != prompt]
    return LabelingSchema(xml=xml, text_field=_field(texts[prompt]), from_name=control.name, to_name=prompt,
                          control_type="textarea", classes=(), task="generation",
                          context_field=_field(others[0]) if others else "")


def load_labeling_config(path: str | Path) -> LabelingSchema:
    path = Path(path)
    if not path.exists():
        raise LabelingConfigError(f"Labeling config {path} does not exist.",
                                  hint="set [labelstudio] labeling_config to a file under labeling_configs/")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise LabelingConfigError(f"Labeling config {path} is not UTF-8 text (byte {exc.start} cannot be read).",
                                  hint="save the file as UTF-8") from None
    return parse_labeling_config(text)


def with_choices(xml: str, classes: list[str]) -> str:
    """Fill the first <Choices>/<Labels> tag with one child per class (replacing any it has).

    Used when the studio creates a project from a template whose classes come from the data.
    """
    schema = parse_labeling_config(xml, allow_no_classes=True)
    child = "Choice" if schema.control_type == "choices" else "Label"
    pattern = re.compile(
        rf"(<(?:Choices|Labels)\b[^>]*\bname=\"{re.escape(schema.from_name)}\"[^>]*?)(/>|>.*?</(?:Choices|Labels)>)",
        re.S,
    )
    match = pattern.search(xml)
    if match is None:  # pragma: no cover - parse succeeded, so the tag exists
        raise LabelingConfigError(f"Could not find the <{schema.control_type}> tag to fill with classes.")
    body = "".join(f"\n    <{child} value={quoteattr(c)}/>" for c in classes)
    tag_name = "Choices" if schema.control_type == "choices" else "Labels"
    replacement = f"{match.group(1)}>{body}\n  </{tag_name}>"
    return xml[: match.start()] + replacement + xml[match.end():]
