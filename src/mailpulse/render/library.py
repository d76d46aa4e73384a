"""A project's templates/ folder, loaded and compiled up front."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from mailpulse.errors import ProjectError
from mailpulse.render.compile import compile_template
from mailpulse.render.template import CompiledTemplate

_MAIN_SUFFIXES = (".mjml", ".html")
_LAYOUT = "templates/ holds NAME.mjml or NAME.html, each with an optional NAME.txt"


class TemplateLibrary:
    """Every template of a project by name, compiled; a bad file stops the load with its line."""

    def __init__(self, templates: Mapping[str, CompiledTemplate]) -> None:
        self._templates = dict(templates)

    @classmethod
    def load(cls, templates_dir: Path, defaults: Path | None = None) -> TemplateLibrary:
        """Every template of `templates_dir`, and those of `defaults` (mailpulse's built-in
        ones) it does not have a template of the same name for."""
        if not templates_dir.is_dir():
            raise ProjectError(templates_dir, "templates folder not found")
        mains, texts = cls._files(templates_dir)
        if defaults is not None:
            builtin_mains, builtin_texts = cls._files(defaults)
            for name, path in builtin_mains.items():
                if name not in mains:
                    mains[name] = path
                    if name in builtin_texts:
                        texts[name] = builtin_texts[name]
        return cls(
            {name: compile_template(name, path, texts.get(name)) for name, path in mains.items()}
        )

    @staticmethod
    def _files(templates_dir: Path) -> tuple[dict[str, Path], dict[str, Path]]:
        """The main files (by template name) and text parts of a folder, checked."""
        mains: dict[str, Path] = {}
        texts: dict[str, Path] = {}
        for path in sorted(templates_dir.iterdir()):
            if path.name.startswith(".") or path.is_dir():
                continue
            name = path.stem
            if path.suffix == ".txt":
                texts[name] = path
            elif path.suffix in _MAIN_SUFFIXES:
                if name in mains:
                    raise ProjectError(
                        path, f"both {mains[name].name} and {path.name} exist: keep one of them"
                    )
                mains[name] = path
            else:
                raise ProjectError(path, f"unexpected file: {_LAYOUT}")
        for name, path in texts.items():
            if name not in mains:
                raise ProjectError(
                    path,
                    f"text part without a template: add {name}.mjml or {name}.html, or rename it",
                )
        return mains, texts

    def get(self, name: str) -> CompiledTemplate:
        try:
            return self._templates[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._templates, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(self.names()) or "none"
            raise KeyError(f"no template '{name}' (known: {known}){hint}") from None

    def names(self) -> list[str]:
        return sorted(self._templates)

    def __contains__(self, name: object) -> bool:
        return name in self._templates

    def __len__(self) -> int:
        return len(self._templates)
