"""MkDocs hook: the reference pages generated from the code, so that they cannot drift from it.

A page holds a marker comment that this hook replaces at build time:

- `<!-- reference:openapi -->`: every operation of the API's OpenAPI document (`api.main`'s app,
  built here without connecting to anything), and the document itself as `reference/openapi.json`;
- `<!-- reference:settings -->`: every field of `paysaga.settings.Settings`, its variable, type,
  default and the comment above it in the source;
- `<!-- reference:cli -->`: the `paysaga` command's help, command by command;
- `<!-- reference:alerts -->`: the alerting rules of `deploy/prometheus/alerts.yml`.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_WORDS = ("key", "secret", "token", "password")


@functools.cache
def _openapi() -> dict[str, Any]:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from api.main import create_app
    from paysaga.settings import Settings

    # Development, whatever the shell says: a production start refuses the default secrets, and
    # the document does not depend on any setting.
    return create_app(Settings(environment="development")).openapi()


def on_pre_build(config: MkDocsConfig) -> None:
    """Each build (`mkdocs serve` rebuilds too) reads the code afresh."""
    _openapi.cache_clear()


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Serve the OpenAPI document beside its reference page."""
    document = json.dumps(_openapi(), indent=2)
    files.append(File.generated(config, "reference/openapi.json", content=document))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    generators = {
        "<!-- reference:openapi -->": lambda: openapi_markdown(_openapi()),
        "<!-- reference:settings -->": settings_markdown,
        "<!-- reference:cli -->": cli_markdown,
        "<!-- reference:alerts -->": alerts_markdown,
    }
    for marker, generate in generators.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{value}`" for value in schema["enum"])
    return str(schema.get("type", "any"))


def openapi_markdown(document: dict[str, Any]) -> str:
    lines: list[str] = []
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((method.upper(), path, operation))
    for tag in sorted(by_tag):
        lines.append(f"## {tag}\n")
        for method, path, operation in by_tag[tag]:
            lines.append(f"### `{method} {path}`\n")
            if operation.get("summary"):
                lines.append(
                    f"**{_cell(operation['summary'])}** (`{operation.get('operationId')}`)\n"
                )
            if operation.get("description"):
                lines.append(operation["description"].strip() + "\n")
            parameters = operation.get("parameters", [])
            if parameters:
                lines.append("| parameter | in | type | required |\n|---|---|---|---|")
                for p in parameters:
                    required = "yes" if p.get("required") else ""
                    kind = _schema_name(p.get("schema", {}))
                    lines.append(f"| `{p['name']}` | {p['in']} | {kind} | {required} |")
                lines.append("")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                lines.append(f"Body ({media}): {_schema_name(content.get('schema', {}))}\n")
            answers = []
            for status, response in operation.get("responses", {}).items():
                schemas = [
                    _schema_name(c.get("schema", {}))
                    for c in response.get("content", {}).values()
                    if c.get("schema")
                ]
                shown = f" ({', '.join(schemas)})" if schemas else ""
                answers.append(f"`{status}` {_cell(response.get('description', ''))}{shown}")
            lines.append("Answers: " + "; ".join(answers) + "\n")
    lines.append("## Schemas\n")
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        lines.append(f"### {name}\n")
        if schema.get("description"):
            lines.append(_cell(schema["description"]) + "\n")
        properties = schema.get("properties", {})
        if properties:
            required = set(schema.get("required", []))
            lines.append("| field | type | required | description |\n|---|---|---|---|")
            for field, spec in properties.items():
                needed = "yes" if field in required else ""
                text = _cell(spec.get("description", ""))
                lines.append(f"| `{field}` | {_schema_name(spec)} | {needed} | {text} |")
            lines.append("")
        elif "enum" in schema:
            lines.append(_schema_name(schema) + "\n")
    return "\n".join(lines)


def _comments_above_fields() -> dict[str, str]:
    """Each Settings field's comment block, read from the source as a reader sees it."""
    source_path = REPO_ROOT / "paysaga" / "settings.py"
    source = source_path.read_text().splitlines()
    tree = ast.parse("\n".join(source))
    comments: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Settings":
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    block: list[str] = []
                    line = item.lineno - 2
                    while line >= 0 and source[line].strip().startswith("#"):
                        block.insert(0, source[line].strip().lstrip("#").strip())
                        line -= 1
                    comments[item.target.id] = " ".join(block)
    return comments


def settings_markdown() -> str:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from paysaga.settings import Settings

    comments = _comments_above_fields()
    lines = ["| variable | type | default | notes |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"PAYSAGA_{(field.alias or name).upper()}"
        kind = getattr(field.annotation, "__name__", None) or str(field.annotation)
        kind = kind.replace("typing.", "")
        if any(word in name for word in SECRET_WORDS) and field.default not in ("", None, 0):
            default = "(a public development value)"
        elif field.default_factory is not None:
            default = "(computed)"
        elif isinstance(field.default, Path):
            default = f"`{field.default}`"
        else:
            default = f"`{field.default!r}`" if field.default not in ("", None) else ""
        lines.append(
            f"| `{variable}` | `{_cell(kind)}` | {_cell(default)} | {_cell(comments.get(name, ''))} |"
        )
    return "\n".join(lines) + "\n"


def cli_markdown() -> str:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from paysaga.cli.main import build_parser

    os.environ["COLUMNS"] = "100"
    sections: list[str] = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        sections.append(f"### `{name}`\n\n```text\n{parser.format_help().rstrip()}\n```\n")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    walk(sub, f"{name} {sub_name}")

    walk(build_parser(), "paysaga")
    return "\n".join(sections)


def alerts_markdown() -> str:
    rules = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    lines = ["| alert | for | severity | summary | runbook |", "|---|---|---|---|---|"]
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            annotations = rule.get("annotations", {})
            anchor = annotations.get("runbook_url", "").split("#")[-1]
            runbook = f"[runbook](../runbooks.md#{anchor})" if anchor else ""
            summary = (
                _cell(annotations.get("summary", "")).replace("{{", "`{{").replace("}}", "}}`")
            )
            lines.append(
                f"| `{rule['alert']}` | {rule.get('for', '')} | "
                f"{rule.get('labels', {}).get('severity', '')} | {summary} | {runbook} |"
            )
    return "\n".join(lines) + "\n"
