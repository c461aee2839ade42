"""Collect the wheels that install ssprop-energy on a machine without network.

    python scripts/wheelhouse.py --python-version 3.12 [--dest wheelhouse]
        [--platform manylinux_2_28_x86_64 ...] [--exclude-file scripts/target-has.txt]

Steps (every pip call uses this interpreter's pip and its configured indexes):

1. The project's own wheel (``pip wheel --no-deps .``).
2. Pure-Python wheels of the dependencies published as source only (fvcore, iopath, ...):
   the project is resolved here, sources allowed (``pip install --dry-run --report``), and
   every requirement that resolves to a source archive is built with ``pip wheel --no-deps``;
   a build that is not pure Python (``none-any``) is an error, since it would not run on
   another platform.
3. The resolution for the target (``--python-version``, ``--platform``, binary wheels only,
   the wheels of 1 and 2 found locally), from the project and ``pytest`` and ``hypothesis``
   (the GPU tests need them).
4. Everything that resolution needs, except what the target brings: torch, always, and the
   names in ``--exclude-file`` (one per line, ``#`` comments). A package needed only through
   an excluded one is left out too. Downloaded with ``pip download --no-deps``.

The folder then holds one wheel per package and ``requirements.txt`` (what was collected,
pinned). On the target: ``pip install --no-index --find-links DEST ssprop-energy``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "ssprop-energy"
ALSO = ("pytest", "hypothesis")
ALWAYS_EXCLUDED = ("torch",)
PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)


def normalize(name: str) -> str:
    """PEP 503 project name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pip(*args: str) -> None:
    """Run this interpreter's pip; a failure ends the script with its exit status."""
    done = subprocess.run([sys.executable, "-m", "pip", *args])
    if done.returncode != 0:
        raise SystemExit(f"error: pip {args[0]} failed (exit {done.returncode})")


def read_names(path: Path | None) -> set[str]:
    """The normalised names in an exclude file (one per line, ``#`` comments)."""
    names = {normalize(n) for n in ALWAYS_EXCLUDED}
    if path is None:
        return names
    if not path.is_file():
        raise SystemExit(f"error: --exclude-file: no file {path}")
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(normalize(name))
    return names


def resolve(requirements: list[str], target: list[str]) -> list[dict]:
    """pip's resolution (``--dry-run --report``) of ``requirements``: the report's items."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        pip(
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            *target,
            *requirements,
        )
        return json.loads(report.read_text())["install"]


def build_pure_wheels(project_wheel: Path, dest: Path) -> None:
    """Step 2: a pure-Python wheel for every requirement that only has a source archive."""
    for item in resolve([str(project_wheel), *ALSO], []):
        url = item["download_info"]["url"]
        if url.endswith(".whl"):
            continue
        meta = item["metadata"]
        pin = f"{meta['name']}=={meta['version']}"
        pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), pin)
        built = [
            w
            for w in dest.glob("*.whl")
            if normalize(w.name.split("-")[0]) == normalize(meta["name"])
        ]
        if not any(w.name.endswith("-none-any.whl") for w in built):
            raise SystemExit(f"error: {pin} has no wheel and does not build as pure Python")


def target_environment(python_version: str) -> dict[str, str]:
    """Marker values of the target (Linux, CPython ``python_version``)."""
    env = default_environment()
    major_minor = ".".join(python_version.split(".")[:2])
    env.update(
        python_version=major_minor,
        python_full_version=f"{major_minor}.0",
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
    )
    return env


def needed(items: list[dict], excluded: set[str], python_version: str) -> list[dict]:
    """The resolved items reachable from the roots without passing through an excluded one."""
    by_name = {normalize(i["metadata"]["name"]): i for i in items}
    env = target_environment(python_version)
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(normalize(name), frozenset[str]()) for name in (PROJECT, *ALSO)]
    while todo:
        name, extras = todo.pop()
        if name in excluded or name not in by_name or (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in by_name[name]["metadata"].get("requires_dist") or []:
            req = Requirement(text)
            if req.marker is not None and not any(
                req.marker.evaluate({**env, "extra": e}) for e in (extras or {""})
            ):
                continue
            todo.append((normalize(req.name), frozenset(req.extras)))
    return [by_name[n] for n in sorted({name for name, _ in seen})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", required=True, help="the target's, e.g. 3.12")
    parser.add_argument("--platform", action="append", help=f"default: {', '.join(PLATFORMS)}")
    parser.add_argument("--dest", type=Path, default=ROOT / "wheelhouse")
    parser.add_argument(
        "--exclude-file", type=Path, help="names the target already has (torch always is)"
    )
    args = parser.parse_args()
    if not re.fullmatch(r"3\.\d+", args.python_version):
        raise SystemExit(f"error: --python-version: expected 3.N, got {args.python_version!r}")
    excluded = read_names(args.exclude_file)
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    pip("wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(ROOT))
    (project_wheel,) = dest.glob("ssprop_energy-*.whl")
    build_pure_wheels(project_wheel, dest)
    binary = ["--only-binary=:all:", "--python-version", args.python_version]
    binary += ["--implementation", "cp", "--find-links", str(dest)]
    for platform in args.platform or PLATFORMS:
        binary += ["--platform", platform]
    with tempfile.TemporaryDirectory() as never_written:  # pip asks for it; a dry run
        resolved = resolve([str(project_wheel), *ALSO], [*binary, "--target", never_written])
    items = needed(resolved, excluded, args.python_version)
    pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items]
    others = [p for p in pins if normalize(p.split("==")[0]) != normalize(PROJECT)]
    pip("download", "--quiet", "--no-deps", "--dest", str(dest), *binary, *others)
    left_out = sorted(
        {normalize(i["metadata"]["name"]) for i in resolved}
        - {normalize(p.split("==")[0]) for p in pins}
    )
    (dest / "requirements.txt").write_text("\n".join(pins) + "\n")
    wheels = sorted(dest.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {dest} for CPython {args.python_version}")
    print(f"left out (the target has them, or only they need them): {', '.join(left_out)}")


if __name__ == "__main__":
    main()
