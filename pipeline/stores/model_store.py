"""Versioned LightGBM models in S3.

Layout in the model bucket::

    <name>/<version, 6 digits>/model.txt    the LightGBM text model, as published
    <name>/<version, 6 digits>/model.json   its ModelVersion record (written last)
    <name>/aliases/<alias>/<entry>          the alias's log: where it pointed, newest first
    <name>/shadow/<entry>                   the shadow's log: the version or alias shadowing

    _compiled/<sha256>/<compiler>/<target>/forest.o      a compiled predictor
    _compiled/<sha256>/<compiler>/<target>/engine.json   its EngineRecord (written last)

A version exists once its ``model.json`` does. Versions are claimed with a
conditional put (``If-None-Match: *``), so two concurrent publishes never get
the same number. Compiled predictors are keyed by what decides their code
(the model text's sha256, the compiler and the target CPU), not by version:
two versions with the same text share one, and a worker fetches it once.

Aliases and the shadow are pointers whose values sit in their keys
(``Routing``): the listing that finds a model's versions finds them too, so
the intake resolves a file's model with one request, and moving a pointer
takes effect for the next file, with nothing cached to restart. This
module does no LightGBM work (the handler uses it to resolve versions, a
client to publish them); compiling a model belongs to the worker's side.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from pipeline import naming
from pipeline.errors import InvalidModel, UnknownModel
from pipeline.messages import ModelRef, utc_now
from pipeline.model_text import ModelInfo, describe
from pipeline.naming import MODEL_NAME, MODEL_NAME_RULE
from pipeline.options import ScoreOptions
from pipeline.quality import Baseline, QualityPolicy
from pipeline.stores.aws import put_once, translated
from pipeline.stores.storage import read_optional

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_MODEL_FILE = "model.txt"
_RECORD_FILE = "model.json"
_BASELINE_FILE = "baseline.json"
COMPILED_PREFIX = "_compiled/"
_ARTIFACT_FILE = "forest.o"
_ENGINE_FILE = "engine.json"
_CLAIM_FILE = "claim.json"
_CLAIM_ATTEMPTS = 20
_ALIASES = "aliases"
_SHADOW = "shadow"
#: A pointer's value once it is removed (an alias deleted, the shadow off).
_NONE = "none"
#: Entries kept in a pointer's log (its history); older ones are removed.
_KEPT_ENTRIES = 20
_LATEST_MS = 10**13 - 1

#: What pins a file's version: a version number, an alias, or nothing.
Pin = int | str | None


@dataclass(frozen=True)
class Route:
    """Which version scores a file (``alias`` says if an alias chose it), and the shadow."""

    model: ModelRef
    shadow: ModelRef | None


@dataclass(frozen=True)
class Routing:
    """One model's versions and pointers, as one listing found them.

    ``entries`` maps a pointer (``aliases/<alias>``, ``shadow``) to its log's
    entry names, newest first: ``<inverted ms>-<value>``, the value a version
    (six digits), an alias (``@name``, the shadow only) or ``none``.
    """

    name: str
    versions: list[int]
    entries: dict[str, list[str]] = field(default_factory=dict)

    def _value(self, pointer: str) -> str | None:
        log = self.entries.get(pointer)
        value = log[0].split("-", 1)[1] if log else _NONE
        return None if value == _NONE else value

    @property
    def aliases(self) -> dict[str, int]:
        """Each set alias and the version it names."""
        found = {}
        for pointer in self.entries:
            value = self._value(pointer)
            if pointer.startswith(f"{_ALIASES}/") and value is not None and value.isdigit():
                found[pointer.removeprefix(f"{_ALIASES}/")] = int(value)
        return dict(sorted(found.items()))

    @property
    def shadow(self) -> int | str | None:
        """The shadow as set: a version, an alias (followed as it moves), or None."""
        value = self._value(_SHADOW)
        if value is None:
            return None
        return value[1:] if value.startswith("@") else int(value)

    def no_alias(self, alias: str) -> str:
        aliases = self.aliases
        listed = ", ".join(f"{a} -> {v}" for a, v in aliases.items()) or "none"
        return f"model {self.name!r} has no alias {alias!r} (set: {listed})"

    def resolve(self, pin: Pin) -> ModelRef:
        """The version ``pin`` names; None: ``champion`` if set, else the latest."""
        if isinstance(pin, str):
            problem = naming.alias_problem(pin)
            if problem is not None:
                raise UnknownModel(problem)
            version = self.aliases.get(pin)
            if version is None:
                raise UnknownModel(self.no_alias(pin))
            alias: str | None = pin
        elif pin is None:
            alias = naming.CHAMPION if naming.CHAMPION in self.aliases else None
            version = self.aliases[alias] if alias else self.versions[-1]
        else:
            version, alias = pin, None
        if version not in self.versions:
            published = ", ".join(map(str, self.versions)) or "none"
            named = f" (alias {alias!r} names it)" if alias else ""
            raise UnknownModel(
                f"model {self.name!r} has no version {version}{named} (published: {published})"
            )
        return ModelRef(name=self.name, version=version, alias=alias)

    @property
    def shadow_version(self) -> ModelRef | None:
        """The version shadowing the model now, if any."""
        target = self.shadow
        if target is None:
            return None
        try:
            return self.resolve(target)
        except UnknownModel:
            return None  # its alias was removed: no shadow until it is set again

    def shadow_ref(self, primary: ModelRef) -> ModelRef | None:
        """The version that shadows ``primary``: None if none is set, or it is ``primary``."""
        ref = self.shadow_version
        return None if ref is None or ref.version == primary.version else ref


class ModelVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    sha256: str
    size: int
    published_at: datetime
    info: ModelInfo
    #: The options a file gets unless its own metadata sets them, key by key.
    defaults: ScoreOptions = ScoreOptions()
    #: Limits on a file's quality report, and what passing one does.
    quality: QualityPolicy = QualityPolicy()
    #: Whether a baseline (``baseline.json``) was published with the version.
    baseline: bool = False

    @property
    def ref(self) -> ModelRef:
        return ModelRef(name=self.name, version=self.version)


class EngineRecord(BaseModel):
    """How a model's text is predicted on one target: compiled, or why not."""

    model_config = ConfigDict(frozen=True)

    sha256: str
    compiler: str
    target: str
    status: Literal["compiled", "refused"]
    #: Why: the gate's verdict, or what the compiler could not reproduce.
    reason: str
    #: Which kernel the artifact holds ("bitvector" or "branches"), chosen as the faster.
    kernel: str | None = None
    compile_seconds: float = 0.0
    created_at: datetime

    @property
    def key(self) -> str:
        return artifact_prefix(self.sha256, self.compiler, self.target)


def artifact_prefix(sha256: str, compiler: str, target: str) -> str:
    return f"{COMPILED_PREFIX}{sha256}/{compiler}/{target}/"


def _prefix(name: str, version: int) -> str:
    return f"{name}/{version:06d}/"


#: Lists a model's routing while the caller reads a file's pin (``ModelStore.route``).
#: Kept for the process, as a warm function's next event finds it: a pool started
#: for every file cost a small file's trip 1.5-3 ms at the median (interleaved runs).
_LISTINGS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-versions")


class ModelStore:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3, self.bucket = s3, bucket
        #: Records never change once written: each is read once per process.
        self._records: dict[ModelRef, ModelVersion] = {}

    def versions(self, name: str) -> list[int]:
        """Published versions of ``name``, oldest first."""
        return self.routing(name).versions

    def routing(self, name: str) -> Routing:
        """What decides the version of ``name``'s next file: its versions, aliases and shadow.

        One listing holds it all: a pointer's value is in its entries' keys
        (``_point``), so resolving a file's model costs one request, aliases or not.
        """
        versions: list[int] = []
        entries: dict[str, list[str]] = {}
        paginator = self._s3.get_paginator("list_objects_v2")
        with translated(f"listing versions of model {name!r}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{name}/"):
                for item in page.get("Contents", []):
                    parts = item["Key"].split("/")
                    if len(parts) == 3 and parts[2] == _RECORD_FILE and parts[1].isdigit():
                        versions.append(int(parts[1]))
                    elif len(parts) == 4 and parts[1] == _ALIASES:
                        entries.setdefault(f"{_ALIASES}/{parts[2]}", []).append(parts[3])
                    elif len(parts) == 3 and parts[1] == _SHADOW:
                        entries.setdefault(_SHADOW, []).append(parts[2])
        return Routing(name, sorted(versions), entries)

    def set_alias(self, name: str, alias: str, version: int) -> ModelRef:
        """Point ``alias`` of ``name`` at ``version``: the next file that uses it gets it."""
        problem = naming.alias_problem(alias)
        if problem is not None:
            raise ValueError(problem)
        routing = self.routing(name)
        ref = routing.resolve(version)
        self._point(routing, f"{_ALIASES}/{alias}", f"{version:06d}")
        return ref.model_copy(update={"alias": alias})

    def delete_alias(self, name: str, alias: str) -> int:
        """Remove ``alias`` of ``name``; the version it named (``UnknownModel``: none)."""
        routing = self.routing(name)
        version = routing.aliases.get(alias)
        if version is None:
            raise UnknownModel(routing.no_alias(alias))
        shadow = routing.shadow
        if shadow == alias:
            raise ValueError(
                f"alias {alias!r} names the shadow of model {name!r}: stop the shadow first "
                f"(pipeline model shadow {name} --off)"
            )
        self._point(routing, f"{_ALIASES}/{alias}", _NONE)
        return version

    def set_shadow(self, name: str, target: int | str | None) -> ModelRef | None:
        """Make a version (or whatever an alias names, as it moves) ``name``'s shadow;
        None stops it. Returns the version it names now."""
        routing = self.routing(name)
        if target is None:
            self._point(routing, _SHADOW, _NONE)
            return None
        ref = routing.resolve(target)
        value = f"{target:06d}" if isinstance(target, int) else f"@{target}"
        self._point(routing, _SHADOW, value)
        return ref

    def _point(self, routing: Routing, pointer: str, value: str) -> None:
        """Add an entry to a pointer's log, newer than any before it, and prune old ones.

        Entries are named by inverted milliseconds, so a listing meets the newest
        first; a setter whose clock lags still writes after the newest entry.
        """
        older = routing.entries.get(pointer, [])
        order = _LATEST_MS - int(utc_now().timestamp() * 1000)
        if older:
            order = min(order, int(older[0].split("-", 1)[0]) - 1)
        prefix = f"{routing.name}/{pointer}/"
        body = json.dumps({"value": value, "set_at": utc_now().isoformat()}).encode()
        with translated(f"setting {pointer} of model {routing.name!r}"):
            self._s3.put_object(
                Bucket=self.bucket,
                Key=f"{prefix}{order:013d}-{value}",
                Body=body,
                ContentType="application/json",
            )
        for entry in older[_KEPT_ENTRIES - 1 :]:
            with contextlib.suppress(ClientError, BotoCoreError):  # history only
                self._s3.delete_object(Bucket=self.bucket, Key=prefix + entry)

    def names(self) -> list[str]:
        response = self._s3.list_objects_v2(Bucket=self.bucket, Delimiter="/")
        prefixes = (p["Prefix"].rstrip("/") for p in response.get("CommonPrefixes", []))
        return sorted(name for name in prefixes if MODEL_NAME.match(name))

    def engine(self, sha256: str, compiler: str, target: str) -> EngineRecord | None:
        """The engine record for this text, compiler and target, if a compile job wrote one."""
        data = self._get_optional(artifact_prefix(sha256, compiler, target) + _ENGINE_FILE)
        return None if data is None else EngineRecord.model_validate_json(data)

    def engines(self, sha256: str) -> list[EngineRecord]:
        """Every engine record for this text (all compilers and targets), newest first."""
        records = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{COMPILED_PREFIX}{sha256}/"):
            for item in page.get("Contents", []):
                if item["Key"].endswith("/" + _ENGINE_FILE):
                    data = self._get_optional(item["Key"])
                    if data is not None:
                        records.append(EngineRecord.model_validate_json(data))
        return sorted(records, key=lambda r: r.created_at, reverse=True)

    def artifact(self, record: EngineRecord) -> bytes:
        data = self._get_optional(record.key + _ARTIFACT_FILE)
        if data is None:
            raise UnknownModel(f"the compiled predictor s3://{self.bucket}/{record.key} is missing")
        return data

    def save_engine(self, record: EngineRecord, artifact: bytes | None) -> None:
        """Store a compile job's result; the record goes last, so its artifact is whole."""
        if artifact is not None:
            self._s3.put_object(Bucket=self.bucket, Key=record.key + _ARTIFACT_FILE, Body=artifact)
        self._s3.put_object(
            Bucket=self.bucket,
            Key=record.key + _ENGINE_FILE,
            Body=record.model_dump_json(indent=2).encode(),
            ContentType="application/json",
        )

    def claim_compile(self, sha256: str, compiler: str, target: str, stale_seconds: float) -> bool:
        """Whether this caller should compile: no one has, or their claim has gone stale.

        A compile that died (its worker was stopped) leaves a claim and no
        record; once the claim is ``stale_seconds`` old, the next claimant
        compiles again.
        """
        key = artifact_prefix(sha256, compiler, target) + _CLAIM_FILE
        now = utc_now()
        body = json.dumps({"claimed_at": now.isoformat()}).encode()
        if not put_once(self._s3, self.bucket, key, body, f"claiming s3://{self.bucket}/{key}"):
            existing = self._get_optional(key)
            claimed = (
                datetime.fromisoformat(json.loads(existing)["claimed_at"]) if existing else now
            )
            if (now - claimed).total_seconds() < stale_seconds:
                return False
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        return True

    @contextlib.contextmanager
    def holding_claim(
        self, sha256: str, compiler: str, target: str, renew_seconds: float
    ) -> Iterator[None]:
        """Renew a compile claim every ``renew_seconds`` while the block runs.

        A long compile must not look dead: a claim that went stale mid-compile
        let a second compile of the same model start beside the first.
        """
        key = artifact_prefix(sha256, compiler, target) + _CLAIM_FILE
        done = threading.Event()

        def renew() -> None:
            while not done.wait(renew_seconds):
                body = json.dumps({"claimed_at": utc_now().isoformat()}).encode()
                with contextlib.suppress(ClientError, BotoCoreError):  # the next one may work
                    self._s3.put_object(Bucket=self.bucket, Key=key, Body=body)

        renewer = threading.Thread(target=renew, name="compile-claim", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()

    def _get_optional(self, key: str) -> bytes | None:
        return read_optional(self._s3, self.bucket, key)

    def resolve(self, name: str, pinned: Pin | Callable[[], Pin] = None) -> ModelRef:
        """The version a file should be scored with (see ``route``)."""
        return self.route(name, pinned).model

    def route(self, name: str, pinned: Pin | Callable[[], Pin] = None) -> Route:
        """The version a file should be scored with, and the model's shadow, if any.

        ``pinned``: a version, or an alias; None for an upload's default: what
        ``champion`` names if it is set, else the latest. It may be a
        function that finds the pin (a request of its own): it runs while the
        model's routing is listed, one round trip for two.
        """
        if callable(pinned):
            listing = _LISTINGS.submit(self.routing, name)
            pinned = pinned()
            routing = listing.result()
        else:
            routing = self.routing(name)
        if not routing.versions:
            raise UnknownModel(
                f"no model named {name!r} is published in s3://{self.bucket} "
                f"(publish one with: pipeline model publish FILE --name {name})"
            )
        model = routing.resolve(pinned)
        return Route(model, routing.shadow_ref(model))

    def records(self, name: str) -> list[ModelVersion]:
        """Every published version of ``name``, oldest first: one listing, one read each."""
        return [self.record(ModelRef(name=name, version=v)) for v in self.versions(name)]

    def record(self, ref: ModelRef) -> ModelVersion:
        ref = ref.bare
        cached = self._records.get(ref)
        if cached is None:
            key = _prefix(ref.name, ref.version) + _RECORD_FILE
            cached = self._records[ref] = ModelVersion.model_validate_json(self._get(key, ref))
        return cached

    def baseline(self, ref: ModelRef) -> Baseline | None:
        """The version's baseline, if it was published with one."""
        data = self._get_optional(_prefix(ref.name, ref.version) + _BASELINE_FILE)
        return None if data is None else Baseline.model_validate_json(data)

    def model_text(self, ref: ModelRef) -> str:
        return self._get(_prefix(ref.name, ref.version) + _MODEL_FILE, ref).decode()

    def _get(self, key: str, ref: ModelRef) -> bytes:
        data = self._get_optional(key)
        if data is None:
            raise UnknownModel(f"model {ref.name!r} version {ref.version} is missing")
        return data

    def publish(
        self,
        name: str,
        text: bytes,
        source: str,
        defaults: ScoreOptions | None = None,
        *,
        quality: QualityPolicy | None = None,
        baseline: Baseline | None = None,
    ) -> ModelVersion:
        """Check ``text`` is a whole LightGBM model and store it as the next version of ``name``.

        ``InvalidModel`` says why it is not, naming ``source`` (its file);
        ``BadOption`` why the model cannot honour ``defaults``, its files' options.
        ``baseline`` is what its files' quality reports compare with; ``quality``
        the limits on them.
        Compiling it is a separate job (``Client.publish_model`` sends it): files
        are scored with LightGBM until the compiled predictor exists.
        """
        if not MODEL_NAME.match(name):
            raise ValueError(f"model name {name!r} is not valid: {MODEL_NAME_RULE}")
        info = describe(text, source)
        defaults = defaults or ScoreOptions()
        defaults.in_force(info)
        check_loads(text, source)
        version = (self.versions(name) or [0])[-1] + 1
        for _ in range(_CLAIM_ATTEMPTS):
            key = _prefix(name, version) + _MODEL_FILE
            doing = f"storing s3://{self.bucket}/{key}"
            if put_once(self._s3, self.bucket, key, text, doing, ContentType="text/plain"):
                break
            version += 1  # another publisher took this number
        else:
            raise RuntimeError(f"could not claim a version number for model {name!r}")
        record = ModelVersion(
            name=name,
            version=version,
            sha256=hashlib.sha256(text).hexdigest(),
            size=len(text),
            published_at=utc_now(),
            info=info,
            defaults=defaults,
            quality=quality or QualityPolicy(),
            baseline=baseline is not None,
        )
        if baseline is not None:  # before the record: a version exists once its record does
            self._s3.put_object(
                Bucket=self.bucket,
                Key=_prefix(name, version) + _BASELINE_FILE,
                Body=baseline.model_dump_json().encode(),
                ContentType="application/json",
            )
        self._s3.put_object(
            Bucket=self.bucket,
            Key=_prefix(name, version) + _RECORD_FILE,
            Body=record.model_dump_json(indent=2).encode(),
            ContentType="application/json",
        )
        return record


#: Python code a child runs to load a model with LightGBM, reading it from stdin.
_LOAD = """
import sys, lightgbm
booster = lightgbm.Booster(model_str=sys.stdin.read())
booster.predict([[float("nan")] * booster.num_feature()])
"""
_LOAD_SECONDS = 120.0


def check_loads(text: bytes, source: str) -> None:
    """Load the model with LightGBM in a child process, where LightGBM is installed.

    The text checks catch every broken file we know of; this catches what
    they do not, the way a worker would meet it, without taking the caller
    down when LightGBM aborts. A client install has no LightGBM and skips it.
    """
    if importlib.util.find_spec("lightgbm") is None:
        return
    try:
        result = subprocess.run(
            [sys.executable, "-c", _LOAD],
            input=text,
            capture_output=True,
            timeout=_LOAD_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidModel(
            f"{source}: LightGBM did not finish loading and predicting one row in "
            f"{_LOAD_SECONDS:g} s"
        ) from exc
    if result.returncode < 0:
        raise InvalidModel(
            f"{source}: LightGBM crashes loading it (signal {-result.returncode}); "
            "a worker that loaded it would die"
        )
    if result.returncode:
        said = result.stderr.decode(errors="replace").strip().splitlines()
        raise InvalidModel(f"{source}: LightGBM refuses it: {said[-1] if said else 'no reason'}")
