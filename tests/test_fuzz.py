"""Seeded, bounded fuzzing of every way bad input reaches deeparch (issue 10's Done-when).

Several hundred generated bad values, each of which must end in a DeeparchError that names the
field or file, the value and what is allowed: never a traceback, a hang, a crash or silent
acceptance.

- every config field: TrainConfig, each architecture's config (parametrized over the registry)
  and the class settings;
- every field of a checkpoint's JSON description and every optimizer and weight tensor:
  retyped, dropped, shuffled, duplicated, reshaped, cast, renamed. These run in a process of their
  own, because the crash the issue found (a fused Adam kernel reading past a tensor) kills the
  process: a SIGSEGV there fails the test, naming the case, instead of ending pytest;
- archive properties of an uploaded checkpoint zip, and image properties of an uploaded picture.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import random
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from deeparch.config import FieldSpec, field_specs
from deeparch.engine.config import TrainConfig, train_field_specs
from deeparch.errors import ConfigError, DeeparchError
from deeparch.models import get_arch, list_archs
from deeparch.settings import ClassSettings, env_name, load_settings

ROOT = Path(__file__).resolve().parents[1]
SEED = 10  # the number; any fixed seed makes the same cases every run
VALUES_PER_FIELD = 4
DESCRIPTION_CASES = 250  # per base checkpoint, sampled from about 1,000 (every field, every edit)


# ---- config fields -----------------------------------------------------------------------------


def bad_values(spec: FieldSpec) -> list[Any]:
    """Values outside what `spec` allows, of every kind a CLI, a link or a file could give."""
    if spec.choices is not None:
        return ["", "nosuch", f"{spec.choices[0]}x", 7, [spec.choices[0]], None]
    if spec.type is bool:
        return ["maybe", "2", 2, -1, [True], "yes please", None]
    if spec.type is int:
        values = ["abc", "1.5", 1.5, "", "1 6", True, "nan", "1e400", [1], None, "0x10"]
        if spec.min is not None:
            values.append(int(spec.min) - 1)
        if spec.max is not None:
            values += [int(spec.max) + 1, 2**63]
        return values
    if spec.type is float:
        values = ["nan", "inf", "-inf", "abc", "", True, [1.0], math.nan, math.inf, None]
        if spec.min is not None:
            values.append(float(spec.min) - max(1.0, abs(float(spec.min))))
        if spec.max is not None:
            values.append(float(spec.max) * 10 + 1)
        return values
    if spec.type is tuple:
        values = ["", "1 6", "a,b", "1.5", 99, "1,-2", "[1", None]
        if spec.min is not None:
            values.append(str(int(spec.min) - 1))
        if spec.max is not None:
            values.append(str(int(spec.max) + 1))
        if spec.max_items is not None:
            values.append(",".join(["1"] * (spec.max_items + 1)))
        return [value for value in values if not _allowed_anyway(spec, value)]
    return []  # free text (a password, a folder name): nothing to get wrong


def _allowed_anyway(spec: FieldSpec, value: Any) -> bool:
    # "[1" reads as the list 1 when 1 is a width the field allows; it is then no bad value.
    return value == "[1" and spec.min is not None and spec.min <= 1


def sample(spec: FieldSpec, rng: random.Random) -> list[Any]:
    values = bad_values(spec)
    return rng.sample(values, min(VALUES_PER_FIELD, len(values)))


def assert_clear(error: ConfigError, field: str, value: Any) -> None:
    message = str(error)
    assert error.field == field, message
    assert message.startswith(f"{field}="), message
    shown = message[len(field) + 1 : message.index(" is not allowed: ")]
    # as given, as text, or as the tuple a JSON list becomes in an arch_config
    forms = [repr(value), repr(str(value)), repr(str(value).strip())]
    if isinstance(value, list):
        forms += [repr(tuple(value)), repr(str(tuple(value)))]
    assert shown in forms or str(value) in shown, message
    allowed = message.split(" is not allowed: ", 1)[1]
    assert len(allowed) >= 5, message


def refused_config(values: dict[str, Any]) -> ConfigError:
    try:
        TrainConfig.from_dict(values)
    except ConfigError as error:
        return error
    raise AssertionError(f"accepted without a word: {values}")


@pytest.mark.parametrize("arch", list_archs())
def test_every_bad_architecture_setting_is_refused_with_field_value_and_allowed(arch):
    rng = random.Random(f"{SEED}-{arch}")
    checked = 0
    for spec in field_specs(get_arch(arch).config_cls):
        for value in sample(spec, rng):
            if value is None:
                continue  # None in an arch_config means "the default"
            error = refused_config({"arch": arch, "arch_config": {spec.name: value}})
            assert_clear(error, spec.name, value)
            checked += 1
    assert checked >= 1 or not field_specs(get_arch(arch).config_cls)


def test_every_bad_training_setting_is_refused_with_field_value_and_allowed():
    rng = random.Random(f"{SEED}-training")
    checked = 0
    for spec in train_field_specs():
        for value in sample(spec, rng):
            error = refused_config({"arch": "mlp", spec.name: value})
            assert_clear(error, spec.name, value)
            checked += 1
    for field, value in (("arch", "nosuch"), ("arch", ""), ("dataset", "nosuch"), ("dataset", 7)):
        assert_clear(refused_config({"arch": "mlp", field: value}), field, value)
        checked += 1
    assert checked >= 40


def test_every_bad_class_setting_is_refused_naming_the_variable():
    rng = random.Random(f"{SEED}-settings")
    checked = 0
    for spec in field_specs(ClassSettings):
        for value in sample(spec, rng):
            if value is None or isinstance(value, list):
                continue  # an environment variable is always text
            variable = env_name(spec.name)
            with pytest.raises(ConfigError) as raised:
                load_settings({variable: str(value)})
            assert_clear(raised.value, variable, str(value))
            checked += 1
    assert checked >= 30


# ---- checkpoints, in a process of their own ---------------------------------------------------

# Fields deeparch never reads: a change there may be accepted.
IGNORED = ("format", "library_versions")
# Fields whose loss makes a checkpoint unusable: dropping one must be refused.
REQUIRED = {
    "train_config", "train_config.arch", "arch", "progress", "progress.step", "progress.epoch",
    "progress.epoch_step", "progress.epoch_loss_sum", "history", "history.losses",
    "history.epoch_metrics", "optimizer", "optimizer.model", "optimizer.model.param_groups",
    "optimizer.model.param_groups[0]", "optimizer.model.param_groups[0].params",
    "optimizer.model.scalars",
}  # fmt: skip
# Lists whose order carries meaning: shuffling must be refused. (A parameter group's betas are
# recorded, not used: a resumed run takes its optimizer's own hyperparameters.)
ORDERED = (".params", "history.losses.", "history.epoch_metrics", ".param_groups")
RETYPED = {
    "number": ["x", [1], {"a": 1}],
    "str": [7, [1], {}],
    "bool": ["x", [1], {}],
    "none": ["x", [1], 7],
    "list": ["x", 7, {}],
    "dict": ["x", 7, [1]],
}
BASES = {
    "adam": {"arch": "mlp", "dataset": "digits", "arch_config": {"hidden_sizes": [8]},
             "batch_size": 256, "max_steps": 7, "optimizer": "adam"},
    "sgd": {"arch": "mlp", "dataset": "digits", "arch_config": {"hidden_sizes": [8]},
            "batch_size": 256, "max_steps": 7, "optimizer": "sgd"},
}  # fmt: skip


def _kind(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return {str: "str", list: "list", dict: "dict"}[type(value)]


def _paths(value: Any, prefix: str = "") -> list[tuple[str, list]]:
    """(dotted path, key path) of every field in a JSON value, depth first."""
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, inner in items:
        shown = f"{prefix}[{key}]" if isinstance(value, list) else f"{prefix}.{key}".lstrip(".")
        found.append((shown, [key]))
        if isinstance(inner, dict | list) and inner:
            found += [(path, [key, *keys]) for path, keys in _paths(inner, shown)]
    return found


def _at(meta: dict, keys: list) -> tuple[Any, Any]:
    parent = meta
    for key in keys[:-1]:
        parent = parent[key]
    return parent, keys[-1]


def description_cases(meta: dict, rng: random.Random) -> list[dict]:
    """Every field retyped, dropped, and every list shuffled and duplicated."""
    cases = []
    for path, keys in _paths(meta):
        ignored = path.startswith(IGNORED)
        parent, key = _at(meta, keys)
        value = parent[key]
        for retyped in RETYPED[_kind(value)]:
            cases.append({"path": path, "keys": keys, "op": "retype", "value": retyped,
                          "must": not ignored})  # fmt: skip
        cases.append({"path": path, "keys": keys, "op": "drop", "must": path in REQUIRED})
        if isinstance(value, list) and len(value) >= 2:
            order = list(range(len(value)))
            while order == sorted(order):
                rng.shuffle(order)
            ordered = any(path.endswith(mark) or mark.endswith(".") and mark in path
                          for mark in ORDERED) and not path.endswith("]")  # fmt: skip
            cases.append({"path": path, "keys": keys, "op": "shuffle", "order": order,
                          "must": ordered and not ignored})  # fmt: skip
        if isinstance(value, list) and value:
            cases.append({"path": path, "keys": keys, "op": "duplicate",
                          "must": not ignored})  # fmt: skip
    return cases


def sampled(cases: list[dict], rng: random.Random) -> list[dict]:
    """One edit of every field, then others at random up to DESCRIPTION_CASES."""
    by_path: dict[str, list[dict]] = {}
    for case in cases:
        by_path.setdefault(case["path"], []).append(case)
    chosen = [rng.choice(group) for group in by_path.values()]
    rest = [case for case in cases if case not in chosen]
    return chosen + rng.sample(rest, max(0, min(DESCRIPTION_CASES - len(chosen), len(rest))))


def tensor_cases(tensors: dict) -> list[dict]:
    """Every tensor dropped, cast, reshaped, renamed; optimizer state made nonsense."""
    cases = []
    names = sorted(tensors)
    for name in names:
        tensor = tensors[name]
        step = name.endswith("/step")
        cases.append({"tensor": name, "op": "drop", "must": True})
        for dtype in ("float16", "float64", "int32", "bool", "complex64"):
            must = not step or dtype in ("bool", "complex64")
            cases.append({"tensor": name, "op": "cast", "dtype": dtype, "must": must})
        cases.append({"tensor": name, "op": "reshape", "must": True})
        if name.startswith("optimizer/"):
            _, optimizer, _, entry = name.split("/")
            cases.append({"tensor": name, "op": "rename", "to": f"optimizer/{optimizer}/99/{entry}",
                          "must": True})  # fmt: skip
            cases.append({"tensor": name, "op": "rename", "to": f"optimizer/other/0/{entry}",
                          "must": True})  # fmt: skip
            if step:
                for value in (-1.0, 1e30, math.nan, 2.5):
                    cases.append({"tensor": name, "op": "fill", "value": value, "must": True})
            elif entry == "exp_avg_sq":
                cases.append({"tensor": name, "op": "fill", "value": -1.0, "must": True})
        other = names[(names.index(name) + 1) % len(names)]
        must = tuple(tensors[other].shape) != tuple(tensor.shape)
        cases.append({"tensor": name, "op": "copy_from", "from": other, "must": must})
    return cases


def _apply(case: dict, tensors: dict, meta: dict) -> tuple[dict, dict]:
    import torch

    tensors, meta = dict(tensors), copy.deepcopy(meta)
    if "keys" in case:
        parent, key = _at(meta, case["keys"])
        if case["op"] == "retype":
            parent[key] = case["value"]
        elif case["op"] == "drop":
            del parent[key]
        elif case["op"] == "shuffle":
            parent[key] = [parent[key][i] for i in case["order"]]
        elif case["op"] == "duplicate":
            parent[key] = [*parent[key], parent[key][0]]
        return tensors, meta
    name, op = case["tensor"], case["op"]
    tensor = tensors[name]
    if op == "drop":
        del tensors[name]
    elif op == "cast":
        tensors[name] = tensor.to(getattr(torch, case["dtype"]))
    elif op == "reshape":
        tensors[name] = tensor.reshape(-1, 1) if tensor.dim() else tensor.reshape(1)
    elif op == "rename":
        tensors[case["to"]] = tensors.pop(name)
    elif op == "fill":
        tensors[name] = torch.full_like(tensor, case["value"])
    elif op == "copy_from":
        tensors[name] = tensors[case["from"]].clone()
    return tensors, meta


def _outcome(load, path) -> dict:
    try:
        load(path)
    except DeeparchError as error:
        return {"outcome": "refused", "message": str(error)}
    except Exception as error:  # noqa: BLE001 (what the fuzz looks for)
        return {"outcome": "traceback", "message": f"{type(error).__name__}: {error}"}
    return {"outcome": "accepted"}


def run_checkpoint_cases(folder: str) -> None:
    """The child process: train the bases, then every case through every loader, one JSON line
    per event on stdout ("start" before a case, so a crash names it)."""
    import safetensors.torch
    import torch

    from deeparch.checkpoint import files as checkpoint
    from deeparch.engine.evaluate import evaluate_checkpoint
    from deeparch.engine.manager import JobManager

    torch.set_num_threads(1)
    rng = random.Random(SEED)
    manager = JobManager(max_running=1, heartbeat_timeout=0)
    for base_name, base in BASES.items():
        job = manager.submit(TrainConfig.from_dict(base))
        assert job.wait(60) and job.state == "finished", job.reason
        saved = job.save_checkpoint(Path(folder) / f"{base_name}.safetensors")
        tensors, meta = checkpoint.read_checkpoint(saved)
        described = description_cases(meta, rng)
        if base_name != "adam":  # the other optimizer: its own state and groups only
            described = [case for case in described if case["path"].startswith("optimizer")]
        described = sampled(described, rng)
        cases = described + tensor_cases(tensors)
        resumed = TrainConfig.from_dict({**base, "max_steps": base["max_steps"] + 1})

        def resume(path, resumed=resumed):
            job = manager.submit(resumed, resume=path)
            if not job.wait(30):
                job.stop()
                raise TimeoutError("the resumed run did not end within 30 s")
            if job.state != "finished":
                raise RuntimeError(f"the resumed run {job.state}: {job.reason}")

        loaders = {
            "load": manager.load_checkpoint,
            "evaluate": evaluate_checkpoint,
            "resume": resume,
        }
        for number, case in enumerate(cases):
            case_id = f"{base_name}-{number}"
            print(json.dumps({"start": case_id, "case": case}, default=str), flush=True)
            mutated_tensors, mutated_meta = _apply(case, tensors, meta)
            path = Path(folder) / f"{case_id}.safetensors"
            text = json.dumps(mutated_meta)
            safetensors.torch.save_file(mutated_tensors, str(path), {checkpoint.METADATA_KEY: text})
            results = {"read": _outcome(checkpoint.read_checkpoint, path)}
            if results["read"]["outcome"] == "accepted":
                for name, load in loaders.items():
                    results[name] = _outcome(load, path)
            print(json.dumps({"done": case_id, "path": str(path), "results": results}), flush=True)
            path.unlink()


def _names_what_is_wrong(message: str, path: str) -> bool:
    """A checkpoint refusal names the file, or (after reading) the checkpoint's field or tensor."""
    return (
        path in message
        or message.startswith(("the checkpoint", "tensor '"))
        or (" is not allowed: " in message)
    )


def test_every_edited_checkpoint_is_refused_clearly_or_harmless(tmp_path):
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.test_fuzz import run_checkpoint_cases; run_checkpoint_cases(sys.argv[2])"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    events = [json.loads(line) for line in ran.stdout.splitlines() if line.startswith("{")]
    started = [e for e in events if "start" in e]
    done = {e["done"]: e for e in events if "done" in e}
    assert ran.returncode == 0, (
        f"the loader process ended with {ran.returncode} during case "
        f"{started[-1] if started else None}: {ran.stderr[-2000:]}"
    )
    assert len(done) == len(started) >= 400
    problems = []
    for event in started:
        case, result = event["case"], done[event["start"]]
        results, path = result["results"], result["path"]
        for loader, outcome in results.items():
            if outcome["outcome"] == "traceback":
                problems.append(f"{event['start']} {case}: {loader} raised {outcome['message']}")
            elif outcome["outcome"] == "refused" and not _names_what_is_wrong(
                outcome["message"], path
            ):
                problems.append(f"{event['start']} {case}: {loader}: {outcome['message']}")
        refused = results["read"]["outcome"] == "refused" or all(
            results[name]["outcome"] == "refused" for name in ("load", "resume")
        )
        if case["must"] and not refused:
            problems.append(f"{event['start']} {case}: accepted without a word: {results}")
    assert not problems, "\n".join(problems)


# ---- uploaded archives -------------------------------------------------------------------------


def _zip(entries: list[tuple[zipfile.ZipInfo | str, bytes]], method=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def _linked(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777 << 16) | 0x20
    return info


def archive_cases(weights: bytes, description: bytes, rng: random.Random) -> list[tuple]:
    """(file name, bytes) of uploads that are no acceptable checkpoint, by property."""
    good = [("run.safetensors", weights), ("run.json", description)]
    bomb = _zip([("run.safetensors", bytes(50_000_000))])
    cases = [
        ("empty.zip", b""),
        ("notzip.zip", rng.randbytes(200)),
        ("cut.zip", _zip(good)[: len(_zip(good)) // 2]),
        ("bomb.zip", bomb),
        ("folder.zip", _zip([("a/run.safetensors", weights)])),
        ("parent.zip", _zip([("../run.safetensors", weights)])),
        ("absolute.zip", _zip([("/tmp/run.safetensors", weights)])),
        ("hidden.zip", _zip([(".run.safetensors", weights)])),
        ("link.zip", _zip([(_linked("run.safetensors"), b"/etc/passwd")])),
        ("two.zip", _zip([("a.safetensors", weights), ("b.safetensors", weights)])),
        ("none.zip", _zip([("run.json", description)])),
        ("extra.zip", _zip([*good, ("notes.txt", b"hello")])),
        ("mismatch.zip", _zip([("run.safetensors", weights), ("other.json", description)])),
        (
            "two-json.zip",
            _zip([("run.safetensors", weights), ("a.json", b"{}"), ("b.json", b"{}")]),
        ),
        ("garbage.zip", _zip([("run.safetensors", rng.randbytes(5000))])),
        ("pickle.zip", _zip([("run.safetensors", b"\x80\x04" + rng.randbytes(100))])),
        ("badjson.zip", _zip([("run.safetensors", weights[:9] + b"#" + weights[10:])])),
        ("model.pt", b"\x80\x04" + rng.randbytes(100)),
        ("weights.bin", rng.randbytes(100)),
        ("noext", weights),
        ("x" * 300 + ".zip", rng.randbytes(100)),
        ("bzip.zip", _zip([("run.safetensors", rng.randbytes(3000))], zipfile.ZIP_BZIP2)),
        ("lzma.zip", _zip([("run.safetensors", rng.randbytes(3000))], zipfile.ZIP_LZMA)),
        ("big.safetensors", bytes(151_000_001)),
    ]
    encrypted = bytearray(_zip(good, zipfile.ZIP_STORED))
    encrypted[6] |= 0x1  # the local header's "encrypted" flag, and the central directory's
    central = encrypted.find(b"PK\x01\x02")
    encrypted[central + 8] |= 0x1
    cases.append(("encrypted.zip", bytes(encrypted)))
    return cases


def test_every_bad_upload_is_refused_naming_the_students_file(tmp_path):
    from deeparch.checkpoint.archive import load_upload, shown_name
    from deeparch.checkpoint.files import read_checkpoint
    from deeparch.engine.manager import JobManager

    job = JobManager(max_running=1, heartbeat_timeout=0).submit(
        TrainConfig.from_dict(BASES["adam"])
    )
    assert job.wait(60) and job.state == "finished"
    path = job.save_checkpoint(tmp_path / "run.safetensors")
    weights, description = path.read_bytes(), path.with_suffix(".json").read_bytes()
    cases = archive_cases(weights, description, random.Random(SEED))
    for name, data in cases:
        with pytest.raises(DeeparchError) as raised:
            load_upload(data, name, read_checkpoint)
        message = str(raised.value)
        assert message.startswith(f"Could not load {shown_name(name)}: "), (name, message)
        assert len(message) > len(f"Could not load {shown_name(name)}: ") + 10
        assert str(tmp_path) not in message and "deeparch-upload-" not in message
    assert len(cases) >= 25


# ---- uploaded pictures -------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, extra: bytes = b"", depth: int = 8, colour: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    rows = zlib.compress(b"\0" * (min(width, 64) + 1) * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def image_cases(rng: random.Random) -> list[tuple[str, bytes]]:
    from PIL import Image

    def saved(image, fmt):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        return buffer.getvalue()

    small = Image.new("L", (16, 16), 200)
    cases = [
        ("empty.png", b""),
        ("noise.png", rng.randbytes(3000)),
        ("huge.png", bytes(6 * 1024 * 1024)),
        ("wide.png", _png(100_000, 1)),
        ("bomb.png", _png(30_000, 30_000)),
        ("zero.png", _png(0, 0)),
        ("depth.png", _png(8, 8, depth=3)),
        ("colour.png", _png(8, 8, colour=5)),
        ("text.png", _png(8, 8, _chunk(b"zTXt", b"c\0\0" + zlib.compress(b"a" * 20_000_000)))),
        ("icc.png", _png(8, 8, _chunk(b"iCCP", b"p\0\0" + zlib.compress(b"\0" * 20_000_000)))),
        ("cut.png", saved(small, "PNG")[:60]),
        ("cut.jpg", saved(small.convert("RGB"), "JPEG")[:100]),
        ("jpeg-huge.jpg", b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 60000, 60000)),
        ("anim.gif", saved(small, "GIF")),
        ("scan.bmp", saved(small, "BMP")),
        ("scan.tiff", saved(small, "TIFF")),
        ("photo.webp", saved(small, "WEBP")),
        ("flat.png", saved(small, "PNG")),  # blank: no digit on it
        ("clear.png", saved(Image.new("RGBA", (16, 16), (0, 0, 0, 0)), "PNG")),
    ]
    return cases


def test_every_bad_picture_is_refused_naming_the_file():
    from deeparch.explore.images import UploadError, decode_upload, preprocess_image

    cases = image_cases(random.Random(SEED))
    for name, data in cases:
        with pytest.raises(UploadError) as raised:
            picture = decode_upload(data, name)
            preprocess_image(picture, (1, 28, 28), name=name)
        message = str(raised.value)
        assert message.startswith(f"{name} "), message
        assert any(word in message for word in ("upload", "PNG or JPEG", "at most")), message
    assert len(cases) >= 19
