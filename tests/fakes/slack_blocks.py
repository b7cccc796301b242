"""Block Kit validation as strict as Slack's: the limits of https://api.slack.com/reference/block-kit.

``block_errors(blocks)`` lists every problem as ``path: message`` (Slack answers ``invalid_blocks``).
The limits are written out here, not imported from the product, so a wrong limit in one is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_BLOCKS = 50
SECTION_TEXT = 3000
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 2000
HEADER_TEXT = 150
ACTION_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
TEXT_TYPES = ("mrkdwn", "plain_text")


def _text(obj: Any, path: str, limit: int, types: tuple[str, ...] = TEXT_TYPES) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in types or not isinstance(obj.get("text"), str):
        return [f"{path}: must be a text object of type {'/'.join(types)}"]
    text = obj["text"]
    if not text:
        return [f"{path}: must not be empty"]
    if len(text) > limit:
        return [f"{path}: must be at most {limit} characters, not {len(text)}"]
    return []


def _confirm(obj: Any, path: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{path}: must be a confirm object"]
    errors = _text(obj.get("title"), f"{path}.title", CONFIRM_TITLE, ("plain_text",))
    errors += _text(obj.get("text"), f"{path}.text", CONFIRM_TEXT)
    errors += _text(obj.get("confirm"), f"{path}.confirm", CONFIRM_BUTTON, ("plain_text",))
    errors += _text(obj.get("deny"), f"{path}.deny", CONFIRM_BUTTON, ("plain_text",))
    if obj.get("style", "primary") not in ("primary", "danger"):
        errors.append(f"{path}.style: must be primary or danger")
    return errors


def _button(element: dict[str, Any], path: str) -> list[str]:
    errors = _text(element.get("text"), f"{path}.text", BUTTON_TEXT, ("plain_text",))
    action_id = element.get("action_id", "")
    if not isinstance(action_id, str) or len(action_id) > ACTION_ID:
        errors.append(f"{path}.action_id: must be a string of at most {ACTION_ID} characters")
    value = element.get("value", "")
    if not isinstance(value, str) or len(value) > BUTTON_VALUE:
        errors.append(f"{path}.value: must be a string of at most {BUTTON_VALUE} characters")
    if element.get("style") not in (None, "primary", "danger"):
        errors.append(f"{path}.style: must be primary or danger")
    if "confirm" in element:
        errors += _confirm(element["confirm"], f"{path}.confirm")
    return errors


def _section(block: dict[str, Any], path: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [f"{path}: a section needs text or fields"]
    errors = _text(block["text"], f"{path}.text", SECTION_TEXT) if "text" in block else []
    for index, field in enumerate(block.get("fields", [])):
        errors += _text(field, f"{path}.fields[{index}]", 2000)
    return errors


def _context(block: dict[str, Any], path: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
        return [f"{path}.elements: must hold 1 to {CONTEXT_ELEMENTS} elements"]
    return [e for i, el in enumerate(elements) for e in _text(el, f"{path}.elements[{i}]", CONTEXT_TEXT)]


def _actions(block: dict[str, Any], path: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= ACTION_ELEMENTS:
        return [f"{path}.elements: must hold 1 to {ACTION_ELEMENTS} elements"]
    errors: list[str] = []
    ids = [e.get("action_id") for e in elements if isinstance(e, dict)]
    if len(ids) != len(set(ids)):
        errors.append(f"{path}.elements: action_id values must be unique within the block")
    for index, element in enumerate(elements):
        if not isinstance(element, dict) or element.get("type") != "button":
            errors.append(f"{path}.elements[{index}]: this fake knows buttons only")
        else:
            errors += _button(element, f"{path}.elements[{index}]")
    return errors


def _header(block: dict[str, Any], path: str) -> list[str]:
    return _text(block.get("text"), f"{path}.text", HEADER_TEXT, ("plain_text",))


def _divider(block: dict[str, Any], path: str) -> list[str]:
    return []


_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section,
    "context": _context,
    "actions": _actions,
    "header": _header,
    "divider": _divider,
}


def block_errors(blocks: Any) -> list[str]:
    if not isinstance(blocks, list):
        return ["blocks: must be a list"]
    if len(blocks) > MAX_BLOCKS:
        return [f"blocks: at most {MAX_BLOCKS} blocks, not {len(blocks)}"]
    errors: list[str] = []
    for index, block in enumerate(blocks):
        path = f"blocks[{index}]"
        check = _CHECKS.get(str(block.get("type"))) if isinstance(block, dict) else None
        if check is None:
            errors.append(f"{path}: unknown block type")
        else:
            errors += check(block, path)
    return errors
