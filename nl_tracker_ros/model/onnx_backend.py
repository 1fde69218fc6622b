"""The onnxruntime backend: JointNLT's per-frame interface on the graphs of an export folder.

``OnnxModel`` has the methods the Tracker calls on the torch model (``encode_text``,
``encode_image``, ``ground``, ``track``) and returns the same ``TextFeatures`` and
``HeadOutput`` (torch CPU tensors), so the Tracker and its lost/re-found policy run unchanged;
the switch and the selector read ``HeadOutput.features`` and stay in torch.

Execution providers, best first among those the installed onnxruntime has: TensorRT, CUDA,
CPU (``tracker.device``: cpu = CPU only; cuda or cuda:N = a GPU provider required; auto = the
best there is). The provider that runs the graphs is logged and published in TrackerStatus.
Intra-op threads follow the project's thread policy (``nl_tracker_ros.threads``), with waiting
threads sleeping rather than spinning, as torch's do.

Where the graphs come from (``build_onnx_model``): ``tracker.onnx_dir`` names an ``nl-tracker
export`` folder, checked against the tracker's preset, weights and precision; empty, the model
is exported on first use (``ensure_export``) into ``$XDG_CACHE_HOME/nl_tracker_ros/<preset>-
<first 16 hex digits of the weights' sha256>-<precision>`` (``~/.cache`` without
XDG_CACHE_HOME) and reused from there; keyed on the weights' content, a retrained file gets a
new folder. Random weights (tests) are exported into a temporary folder that lives as long as
the model.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import tempfile

import numpy as np
import torch

from nl_tracker_ros.errors import CheckpointError, ConfigError, InputError
from nl_tracker_ros.model.config import ModelConfig
from nl_tracker_ros.model.export import (FORMAT, FORMAT_VERSION, GRAPHS, MANIFEST, PRECISIONS,
                                         graph_specs, open_session, to_numpy)
from nl_tracker_ros.model.jointnlt import HeadOutput, TextFeatures, next_memory

log = logging.getLogger(__name__)

GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
CPU_PROVIDER = 'CPUExecutionProvider'
_ORT_TYPES = {'tensor(float)': 'float32', 'tensor(int64)': 'int64', 'tensor(bool)': 'bool',
              'tensor(float16)': 'float16'}


def cache_root() -> pathlib.Path:
    """Where exports made on first use are kept: ``$XDG_CACHE_HOME/nl_tracker_ros``."""
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return pathlib.Path(base) / 'nl_tracker_ros'


def cache_folder(preset: str, weights_sha256: str, precision: str) -> pathlib.Path:
    """The cache folder of one (preset, weights, precision)."""
    return cache_root() / f'{preset}-{weights_sha256[:16]}-{precision}'


def choose_providers(device: str, available: list[str] | None = None) -> list[str]:
    """Execution providers for ``device`` (cpu, cuda, cuda:N, auto), best first.

    ConfigError when a GPU is asked for and this onnxruntime has no GPU provider.
    """
    import onnxruntime as ort

    available = list(ort.get_available_providers() if available is None else available)
    gpu = [p for p in GPU_PROVIDERS if p in available]
    if device == 'cpu':
        return [CPU_PROVIDER]
    if device == 'auto':
        return gpu + [CPU_PROVIDER]
    if device == 'cuda' or (device.startswith('cuda:') and device[5:].isdigit()):
        if not gpu:
            raise ConfigError(f'tracker.device {device}: onnxruntime {ort.__version__} has no '
                              f'GPU provider (it has {available}); install onnxruntime-gpu '
                              f'(CUDA) or a build with TensorRT, or set tracker.device cpu')
        return gpu + [CPU_PROVIDER]
    raise ConfigError(f'tracker.device: expected cpu, cuda, cuda:N or auto, got {device!r}')


def _provider_options(providers: list[str], device: str, graph: str, mc: ModelConfig,
                      precision: str, folder: pathlib.Path) -> list:
    """Per-provider options: the GPU index, and TensorRT's engine cache, fp16 switch and the
    range of the RoI memory length (the one input whose shape varies)."""
    index = device[5:] if device.startswith('cuda:') else '0'
    out = []
    for p in providers:
        if p == 'TensorrtExecutionProvider':
            opts = {'device_id': index, 'trt_engine_cache_enable': 'True',
                    'trt_engine_cache_path': str(_engine_cache(folder)),
                    'trt_timing_cache_enable': 'True',
                    'trt_fp16_enable': str(precision == 'fp16')}
            if graph == 'track':
                r, d = mc.roi_size ** 2, mc.dim
                opts['trt_profile_min_shapes'] = f'temporal:1x{r}x{d}'
                opts['trt_profile_opt_shapes'] = f'temporal:1x{r * mc.memory_frames}x{d}'
                opts['trt_profile_max_shapes'] = f'temporal:1x{r * mc.memory_frames}x{d}'
            out.append((p, opts))
        elif p == 'CUDAExecutionProvider':
            out.append((p, {'device_id': index}))
        else:
            out.append(p)
    return out


def _engine_cache(folder: pathlib.Path) -> pathlib.Path:
    """Where TensorRT keeps the engines it builds for ``folder`` (minutes to build on a
    Jetson, so kept): beside the graphs, or in the cache root when the folder is read-only."""
    if os.access(folder, os.W_OK):
        return folder / 'trt_cache'
    return cache_root() / 'trt' / folder.resolve().as_posix().strip('/').replace('/', '_')


def session_options(threads: int):
    """onnxruntime options: ``threads`` intra-op threads (sleeping when idle), sequential
    execution, every graph optimisation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
    opts.log_severity_level = 3
    return opts


# ------------------------------------------------------------------------ folder checks


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of an export folder; CheckpointError when it is missing or not ours."""
    folder = pathlib.Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise CheckpointError(f'export folder {folder}: not found (make one with nl-tracker '
                              f'export, or leave tracker.onnx_dir empty to export on first use)')
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f'export folder {folder}: no {MANIFEST}; expected the output of '
                              f'nl-tracker export') from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'export folder {folder}: {MANIFEST} unreadable ({exc})') from None
    got = (manifest.get('format'), manifest.get('version')) if isinstance(manifest, dict) \
        else (None, None)
    if got != (FORMAT, FORMAT_VERSION):
        raise CheckpointError(f'export folder {folder}: {MANIFEST} is format {got}, expected '
                              f'({FORMAT!r}, {FORMAT_VERSION})')
    return manifest


def check_manifest(manifest: dict, folder: pathlib.Path, mc: ModelConfig, precision: str,
                   weights_sha256: str | None) -> None:
    """The folder must hold ``mc``'s model at ``precision`` with these weights (None: any)."""
    from nl_tracker_ros.config import to_dict

    where = f'export folder {folder}'
    if manifest.get('preset') != mc.name:
        raise CheckpointError(f'{where}: graphs of preset {manifest.get("preset")!r}, expected '
                              f'{mc.name!r}')
    model = manifest.get('model') or {}
    differ = sorted(k for k, v in to_dict(mc).items() if model.get(k) != v)
    if differ:
        raise CheckpointError(f'{where}: made for other {mc.name} settings ({", ".join(differ)}'
                              f' differ); export it again')
    if manifest.get('precision') != precision:
        raise CheckpointError(f'{where}: {manifest.get("precision")} graphs, tracker.precision '
                              f'is {precision}')
    got = manifest.get('weights_sha256', '')
    if weights_sha256 is not None and got != weights_sha256:
        raise CheckpointError(f'{where}: graphs of weights {manifest.get("weights") or "random"} '
                              f'(sha256 {got[:16]}), expected sha256 {weights_sha256[:16]} of '
                              f'the tracker\'s weights')


def _check_session(session, folder: pathlib.Path, name: str, spec) -> None:
    """The session's inputs and outputs must be the contract's, names, shapes and types."""
    from nl_tracker_ros.model.export import TensorSpec

    def described(args):
        return [TensorSpec(a.name, tuple(d if isinstance(d, int) else str(d) for d in a.shape),
                           _ORT_TYPES.get(a.type, a.type)) for a in args]
    for kind, got, want in (('inputs', described(session.get_inputs()), spec[0]),
                            ('outputs', described(session.get_outputs()), spec[1])):
        same = len(got) == len(want) and all(
            g.name == w.name and g.dtype == w.dtype and len(g.shape) == len(w.shape)
            and all(isinstance(b, str) or a == b for a, b in zip(g.shape, w.shape))
            for g, w in zip(got, want))
        if not same:
            raise CheckpointError(
                f'export folder {folder}: {name}.onnx has {kind} '
                f'[{"; ".join(s.text() for s in got)}], expected '
                f'[{"; ".join(s.text() for s in want)}]')


# ------------------------------------------------------------------------------- model


class OnnxModel:
    """JointNLT's Tracker-facing methods on onnxruntime sessions (batch 1, CPU tensors)."""

    def __init__(self, folder: str | os.PathLike, mc: ModelConfig, precision: str = 'fp32',
                 device: str = 'cpu', threads: int = 1, weights_sha256: str | None = None,
                 keep_alive=None):
        """Open the graphs in ``folder`` after checking it holds ``mc``'s model at
        ``precision`` with weights of ``weights_sha256`` (None: any)."""
        if precision not in PRECISIONS:
            raise ConfigError(f'tracker.precision {precision}: the onnxruntime backend runs '
                              f'{" or ".join(PRECISIONS)} graphs')
        self.folder = pathlib.Path(folder)
        self.manifest = read_manifest(self.folder)
        check_manifest(self.manifest, self.folder, mc, precision, weights_sha256)
        self.config = mc
        self.precision = precision
        self.stride = mc.stride
        self.dim = mc.dim
        self.template_tokens = mc.template_tokens
        self.search_tokens = mc.search_tokens
        self.max_text_len = mc.max_text_len
        self._keep_alive = keep_alive      # a TemporaryDirectory the graphs live in, if any
        providers = choose_providers(device)
        opts = session_options(threads)
        specs = graph_specs(mc)
        self.sessions = {}
        for name in GRAPHS:
            s = open_session(self.folder / f'{name}.onnx', opts,
                             _provider_options(providers, device, name, mc, precision,
                                               self.folder))
            _check_session(s, self.folder, name, specs[name])
            self.sessions[name] = s
        self.providers = self.sessions['image'].get_providers()
        self.provider = self.providers[0]
        self._sizes = {mc.template_size: 'template', mc.search_size: 'image'}

    def eval(self):
        """No-op (the graphs are inference graphs); mirrors ``nn.Module.eval``."""
        return self

    def _run(self, graph: str, feed: dict) -> list[np.ndarray]:
        return self.sessions[graph].run(None, feed)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                    ) -> TextFeatures:
        """Token ids and mask (1, L), L <= max_text_len -> TextFeatures, as the torch model."""
        n = self.max_text_len
        if input_ids.dim() != 2 or input_ids.shape != attention_mask.shape \
                or input_ids.shape[0] != 1 or input_ids.shape[1] > n:
            raise InputError(f'text input: expected input_ids and attention_mask (1, L), L <= '
                             f'{n}, got {tuple(input_ids.shape)} and '
                             f'{tuple(attention_mask.shape)}')
        pad = n - input_ids.shape[1]
        ids = np.pad(to_numpy(input_ids).astype(np.int64), ((0, 0), (0, pad)))
        mask = np.pad(to_numpy(attention_mask).astype(np.int64), ((0, 0), (0, pad)))
        tokens = torch.from_numpy(self._run('text', {'input_ids': ids,
                                                     'attention_mask': mask})[0])
        return TextFeatures(tokens, torch.from_numpy(mask == 0), tokens[:, 0])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) ImageNet-normalised crop of the template or search size -> tokens."""
        graph = self._sizes.get(images.shape[-1]) if images.dim() == 4 else None
        if graph is None or images.shape[:2] != (1, 3) or images.shape[-2] != images.shape[-1] \
                or not images.is_floating_point():
            sizes = ' or '.join(f'(1, 3, {s}, {s})' for s in self._sizes)
            raise InputError(f'images: the onnxruntime backend expects a float {sizes} crop, '
                             f'got {images.dtype} {tuple(images.shape)}')
        return torch.from_numpy(self._run(graph, {'image': to_numpy(images)})[0])

    def ground(self, text: TextFeatures, image_tokens: torch.Tensor,
               image_pad_mask: torch.Tensor | None = None) -> HeadOutput:
        """Whole-image grounding step; same arguments and result as ``JointNLT.ground``."""
        feed = self._text_feed(text)
        feed['image_tokens'] = self._tokens(image_tokens, self.search_tokens, 'image tokens')
        feed['image_pad'] = self._pad(image_pad_mask, self.search_tokens, 'image pad mask')
        return self._head(self._run('ground', feed), None)

    def track(self, text: TextFeatures, template_tokens: torch.Tensor,
              search_tokens: torch.Tensor, temporal: torch.Tensor | None = None, *,
              template_pad_mask: torch.Tensor | None = None,
              search_pad_mask: torch.Tensor | None = None) -> HeadOutput:
        """Tracking step with the RoI memory; same arguments and result as ``JointNLT.track``."""
        feed = self._text_feed(text)
        feed['template_tokens'] = self._tokens(template_tokens, self.template_tokens,
                                               'template tokens')
        feed['template_pad'] = self._pad(template_pad_mask, self.template_tokens,
                                         'template pad mask', allow_all=True)
        feed['search_tokens'] = self._tokens(search_tokens, self.search_tokens, 'search tokens')
        feed['search_pad'] = self._pad(search_pad_mask, self.search_tokens, 'search pad mask')
        r = self.config.roi_size ** 2
        if temporal is None or temporal.shape[1] == 0:
            feed['temporal'] = np.zeros((1, r, self.dim), np.float32)
            feed['use_temporal'] = np.zeros((1, 1, 1), np.float32)
        else:
            if temporal.dim() != 3 or temporal.shape[0] != 1 or temporal.shape[2] != self.dim \
                    or temporal.shape[1] % r:
                raise InputError(f'temporal: expected (1, k * {r}, {self.dim}), got '
                                 f'{tuple(temporal.shape)}')
            feed['temporal'] = to_numpy(temporal)
            feed['use_temporal'] = np.ones((1, 1, 1), np.float32)
        return self._head(self._run('track', feed), temporal)

    # -- helpers ----------------------------------------------------------------------------

    def _text_feed(self, text: TextFeatures) -> dict:
        n = self.max_text_len
        if tuple(text.tokens.shape) != (1, n, self.dim):
            raise InputError(f'text features: expected tokens (1, {n}, {self.dim}), got '
                             f'{tuple(text.tokens.shape)}')
        return {'text_tokens': to_numpy(text.tokens),
                'text_pad': to_numpy(text.pad_mask).astype(bool)}

    def _tokens(self, tokens: torch.Tensor, n: int, what: str) -> np.ndarray:
        if tokens.dim() != 3 or tuple(tokens.shape) != (1, n, self.dim):
            raise InputError(f'{what}: expected (1, {n}, {self.dim}), got '
                             f'{tuple(tokens.shape)}')
        return to_numpy(tokens)

    @staticmethod
    def _pad(mask: torch.Tensor | None, n: int, what: str, allow_all: bool = False
             ) -> np.ndarray:
        if mask is None:
            return np.zeros((1, n), bool)
        out = to_numpy(mask).astype(bool)
        if out.shape != (1, n) or (not allow_all and out.all()):
            raise InputError(f'{what}: expected (1, {n}) bool with some unpadded token, got '
                             f'{tuple(mask.shape)}')
        return out

    def _head(self, out: list[np.ndarray], temporal: torch.Tensor | None) -> HeadOutput:
        box, p_tl, p_br, roi, feats, score = (torch.from_numpy(a) for a in out)
        memory = next_memory(temporal, roi, self.config.roi_size, self.config.memory_frames)
        return HeadOutput(box, p_tl, p_br, memory, feats, score)


# ------------------------------------------------------------------------ for a tracker


def provider_device_type(device: str) -> str:
    """'cuda' when ``device`` gets a GPU provider, else 'cpu' (for the thread policy)."""
    return 'cpu' if choose_providers(device)[0] == CPU_PROVIDER else 'cuda'


def build_onnx_model(config, mc: ModelConfig, weights, device: str, threads: int) -> OnnxModel:
    """The OnnxModel of a TrackerConfig ``config`` whose preset is ``mc`` and whose weights file
    is ``weights`` (None or '' for random weights).

    ``config.onnx_dir`` names an export folder, which must hold these weights at
    ``config.precision``; empty, the graphs come from :func:`ensure_export`.
    """
    from nl_tracker_ros.model.export import weights_digest

    if config.precision not in PRECISIONS:
        raise ConfigError(f'tracker.precision {config.precision}: the onnxruntime backend runs '
                          f'{" or ".join(PRECISIONS)} graphs')
    weights = str(weights or '')
    if config.onnx_dir:
        folder, keep = pathlib.Path(config.onnx_dir).expanduser(), None
        sha = weights_digest(weights)
    else:
        folder, sha, keep = ensure_export(mc, weights, config.precision,
                                          lambda: _torch_model(mc, weights))
    model = OnnxModel(folder, mc, config.precision, device, threads, sha, keep)
    log.info('tracker: onnxruntime %s backend, provider %s (of %s), graphs in %s',
             ort_version(), model.provider, model.providers, folder)
    return model


def ensure_export(mc: ModelConfig, weights: str, precision: str, torch_model
                  ) -> tuple[pathlib.Path, str, object]:
    """(folder, weights sha256, keep-alive) of graphs of ``mc`` with ``weights`` at
    ``precision``, exported from ``torch_model()`` (called only when an export is needed).

    A weights file gets the cache folder (:func:`cache_folder`), exported on first use and
    exported again when it does not hold what it should; random weights ('') a temporary folder
    that lives as long as the returned keep-alive object.
    """
    from nl_tracker_ros.model.export import export_model, weights_digest

    sha = weights_digest(weights)
    if not weights:
        keep = tempfile.TemporaryDirectory(prefix='nl_tracker_onnx-')
        folder = pathlib.Path(keep.name) / 'export'
        export_model(torch_model(), mc, folder, precision, '', sha)
        return folder, sha, keep
    folder = cache_folder(mc.name, sha, precision)
    try:
        check_manifest(read_manifest(folder), folder, mc, precision, sha)
    except CheckpointError as exc:
        if folder.exists():
            log.warning('onnx cache: %s; exporting again', exc)
        log.info('onnx cache: exporting %s with %s (%s) into %s', mc.name, weights, precision,
                 folder)
        export_model(torch_model(), mc, folder, precision, weights, sha)
    return folder, sha, None


def _torch_model(mc: ModelConfig, weights: str):
    from nl_tracker_ros.model.checkpoint import load_weights
    from nl_tracker_ros.model.jointnlt import build_model

    model = build_model(mc)
    if weights:
        load_weights(model, weights, mc)
    else:
        log.warning('tracker: preset %s runs on random weights (tracker.random_weights: for '
                    'tests only)', mc.name)
    return model.eval()


def ort_version() -> str:
    """The installed onnxruntime's version."""
    import onnxruntime as ort
    return ort.__version__
