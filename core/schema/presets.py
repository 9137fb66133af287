"""Presets (TOML files) and `--set` overrides -> a `RunConfig`, and presets written back.

Built-in presets ship inside the package (`presets/`, package data, found the same way in editable
and installed copies); presets a user saves go to the user folder: `$CLTUI_PRESETS_DIR`, else the
platform's config folder (`$XDG_CONFIG_HOME/cltui/presets`, ~/.config/cltui/presets). Both are listed;
a user preset with a built-in's name is the one loaded. Torch-free.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from core.files import slug, write_text_atomic
from core.schema.config import SCENARIOS, ConfigError, RunConfig, validate_config
from core.schema.limits import show
from core.schema.params import METHOD_PARAMS

PRESET_ONLY_KEYS = ("description", "method_defaults", "merge")  # merge: `cltui merge` reads it


def builtin_presets_dir() -> Path:
    """The presets shipped with cltui: the `presets` package's folder, in a checkout and in an install alike."""
    try:
        spec = importlib.util.find_spec("presets")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "presets"


def user_presets_dir() -> Path:
    """Where presets a user saves go (and are listed from): $CLTUI_PRESETS_DIR, else the config folder."""
    env = os.environ.get("CLTUI_PRESETS_DIR")
    if env:
        return Path(env).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "cltui" / "presets"


def _names(folder: Path) -> set[str]:
    try:
        return {p.stem for p in folder.glob("*.toml") if _is_file(p)}
    except OSError:  # an unreadable or missing folder lists nothing
        return set()


def list_presets() -> list[str]:
    """Every preset by name: the built-in ones and the user's (a user preset never hides a built-in one)."""
    return sorted(_names(builtin_presets_dir()) | _names(user_presets_dir()))


def is_builtin(name: str) -> bool:
    return name in _names(builtin_presets_dir())


def preset_file(name: str) -> Path | None:
    """The file of a preset by name (built-in first, then the user's), or None. Only plain names: a name
    with a separator or a leading dot never reaches outside the two folders."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        return None
    for folder in (builtin_presets_dir(), user_presets_dir()):
        path = folder / f"{name}.toml"
        if _is_file(path):
            return path
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


def load_preset(name: str) -> dict[str, Any]:
    """A preset by name (built-in or the user's) or by path to a TOML file; the raw table, its top level
    checked (sections are tables, description a string, method_defaults a table per method), not yet validated."""
    path = Path(name)
    if not (path.suffix == ".toml" and _is_file(path)):
        found = preset_file(name)
        if found is None:
            raise ConfigError(f"unknown preset {name!r}; available: {', '.join(list_presets())} "
                              f"(or give the path of a .toml file)", field="preset")
        path = found
    try:
        with path.open("rb") as f:
            table = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"preset {path}: not valid TOML ({e}); fix the file", field="preset") from None
    except RecursionError:
        raise ConfigError(f"preset {path}: not valid TOML (values nested too deeply); fix the file",
                          field="preset") from None
    except OSError as e:
        raise ConfigError(f"preset {path}: cannot read it ({e.strerror})", field="preset") from None
    _check_preset(table, f"preset {path}")
    return table


def _check_preset(table: dict[str, Any], where: str) -> None:
    """The shapes build_config and the TUI rely on before validation; a one-line ConfigError naming the key."""
    for key in ("benchmark", "model", "train", "method"):
        if key in table and not isinstance(table[key], dict):
            raise ConfigError(f"{where}: {key} must be a table ([{key}] followed by its settings), "
                              f"not {show(table[key])}", field="preset")
    if "description" in table and not isinstance(table["description"], str):
        raise ConfigError(f'{where}: description must be a string, e.g. description = "what it runs"; '
                          f"not {show(table['description'])}", field="preset")
    defaults = table.get("method_defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where}: method_defaults must hold a table per method, e.g. [method_defaults.ewc] "
                          f"then lambda = 100; not {show(defaults)}", field="preset")
    for method, params in defaults.items():
        if method not in METHOD_PARAMS:
            raise ConfigError(f"{where}: method_defaults.{method}: unknown method; choose one of: "
                              f"{', '.join(METHOD_PARAMS)}", field="preset")
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: method_defaults.{method} must be a table of {method}'s settings, "
                              f"e.g. [method_defaults.{method}]; not {show(params)}", field="preset")
        for key, value in params.items():
            if isinstance(value, dict) and not set(value) <= set(SCENARIOS):
                extra = ", ".join(sorted(set(value) - set(SCENARIOS)))
                raise ConfigError(f"{where}: method_defaults.{method}.{key}: a per-scenario table takes the keys "
                                  f"{', '.join(SCENARIOS)}, not {extra}", field="preset")


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.lr=3e-4` -> (["train", "lr"], 0.0003). Values are read as TOML (numbers, booleans, lists,
    quoted strings); anything that is not valid TOML is taken as a plain string."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise ConfigError(f"--set {item!r}: write it as KEY=VALUE with a dotted key, e.g. --set train.lr=3e-4",
                          field=key)
    raw = raw.strip()
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (ValueError, RecursionError):  # TOMLDecodeError is a ValueError; RecursionError: nested too deeply
        return key.split("."), raw
    # A line break in the value could smuggle in more TOML keys (v = 1 / x = 2): then it is not one value.
    return key.split("."), parsed["v"] if set(parsed) == {"v"} else raw


def _set_path(data: dict[str, Any], path: list[str], value: Any, origin: str) -> None:
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            key = ".".join(path[: i + 1])
            raise ConfigError(f"{origin}: {key} is a value, not a section", field=key)
        node = child
    node[path[-1]] = value


def build_config(
    preset: str = "split-digits",
    *,
    method: str | None = None,
    scenario: str | None = None,
    seed: int | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    download: bool | None = None,
    overrides: list[str] = (),  # type: ignore[assignment]
) -> RunConfig:
    """Preset, then the named options, then `--set` overrides, then the preset's per-scenario method
    defaults for whatever is still unset; validated into a RunConfig or a one-line ConfigError."""
    table = load_preset(preset)  # its top level is checked: sections and method_defaults' entries are tables
    data = {k: v for k, v in table.items() if k not in PRESET_ONLY_KEYS}
    data["preset"] = Path(preset).stem if preset.endswith(".toml") else preset
    data.setdefault("method", {"name": "none"})
    if method is not None and data["method"].get("name") != method:
        data["method"] = {"name": method}
    for value, path in (
        (scenario, ["scenario"]),
        (seed, ["train", "seed"]),
        (device, ["train", "device"]),
        (data_dir, ["benchmark", "data_dir"]),
        (download, ["benchmark", "download"]),
    ):
        if value is not None:
            _set_path(data, path, value, "option")
    set_origin: dict[str, str] = {}
    for item in overrides:
        path, value = parse_override(item)
        _set_path(data, path, value, f"--set {item}")
        set_origin[".".join(path)] = item
    # Tuned defaults differ by orders of magnitude per scenario (docs/reference.md): resolve them now. After
    # --set the method or the scenario may be anything: only a table with a string name takes defaults.
    chosen = data["method"].get("name") if isinstance(data.get("method"), dict) else None
    if isinstance(chosen, str):
        for key, value in method_defaults(table, chosen, data.get("scenario", "class")).items():
            data["method"].setdefault(key, value)
    return validate_config(data, set_origin)


def method_defaults(table: dict[str, Any], method: str, scenario: object) -> dict[str, Any]:
    """The settings a preset gives `method` under `scenario`, before any --set: its tuned per-scenario
    [method_defaults.<method>] values, overridden by its own [method] table when that names the method.
    The one place both `build_config` and the compose form take a method's defaults from."""
    resolved: dict[str, Any] = {}
    for key, value in table.get("method_defaults", {}).get(method, {}).items():
        if isinstance(value, dict):  # per scenario: {task = .., domain = .., class = ..}
            if not isinstance(scenario, str) or scenario not in value:
                continue
            value = value[scenario]
        resolved[key] = value
    own = table.get("method", {})
    if isinstance(own, dict) and own.get("name") == method:
        resolved.update({k: v for k, v in own.items() if k != "name"})
    return resolved


# --- Writing presets ---------------------------------------------------------------------------------


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_text(value: Any) -> str:
    """A value as `--set` (and a TOML file) writes it, strings bare; "" for None (unset)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return {math.inf: "inf", -math.inf: "-inf"}.get(value, "nan")
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_text(v)}" for k, v in value.items()) + " }"
    return str(value)


def toml_literal(value: Any) -> str:
    """`toml_text`, with strings quoted: for writing a TOML file."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_literal(v)}" for k, v in value.items()) + " }"
    return toml_text(value)


def preset_toml(config: RunConfig, description: str, tuned: dict[str, Any]) -> str:
    """A preset file holding `config` fully resolved, and the base preset's tuned method defaults
    (`tuned`, its method_defaults table) so that switching method on top of it keeps them."""
    data = config.to_dict()
    lines = [f"description = {toml_literal(description)}", f"scenario = {toml_literal(data['scenario'])}", ""]
    for section in ("benchmark", "model", "train", "method"):
        lines.append(f"[{section}]")
        lines += [f"{toml_key(k)} = {toml_literal(v)}" for k, v in data[section].items() if v is not None]
        lines.append("")
    for method, table in tuned.items():
        lines.append(f"[method_defaults.{toml_key(method)}]")
        lines += [f"{toml_key(k)} = {toml_literal(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def preset_save_path(text: str) -> Path:
    """Where "save as preset" writes `text`: a name goes into the user's presets folder (made a plain file
    name); a path (with a / or ending in .toml) is taken as the user typed it."""
    text = text.strip()
    if "/" in text or text.endswith(".toml"):
        path = Path(text).expanduser()
        return path if path.suffix == ".toml" else path.with_suffix(".toml")
    name = slug(text).strip("-.") or "preset"  # a leading dot would hide it from the listing
    return user_presets_dir() / f"{name}.toml"


def save_preset(path: Path, config: RunConfig, description: str, tuned: dict[str, Any]) -> None:
    """Write a preset file of `config` (atomically: a reader never sees half of it)."""
    write_preset_text(path, preset_toml(config, description, tuned))


def shadows_builtin(path: Path) -> bool:
    """Whether a preset saved at `path` would go into the user's folder under a built-in preset's name, which
    lookup by name always finds first (a file elsewhere is run by its path, so any name does there)."""
    try:
        mine = path.resolve().parent == user_presets_dir().resolve()
    except (OSError, RuntimeError):
        return False
    return mine and is_builtin(path.stem)


def write_preset_text(path: Path, text: str) -> None:
    """Write a preset file's text atomically, making the user's presets folder on first use. A built-in preset
    is never overwritten: ConfigError naming the preset."""
    if path.resolve().parent == builtin_presets_dir().resolve():
        raise ConfigError(f"preset {path.stem}: the built-in presets are not changed; save it under another "
                          f"name (it goes to {user_presets_dir()})", field="preset")
    if shadows_builtin(path):
        raise ConfigError(f"preset {path.stem}: a built-in preset has that name and would always hide this one; "
                          f"save it under another name", field="preset")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
