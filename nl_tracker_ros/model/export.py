"""ONNX export of JointNLT: one graph per model part, as the Tracker calls them.

Graphs (batch 1, static shapes from the preset; only the RoI memory length varies):

- ``text``: token ids and mask (1, max_text_len) -> projected text tokens (once per command);
- ``template``: the template crop -> its tokens (once per template);
- ``image``: a search crop or the grounding image (same size) -> its tokens (every frame);
- ``ground``: text tokens and mask, image tokens and pad mask -> box, corner heatmaps, RoI
  tokens, features and score (a whole-frame step);
- ``track``: the same plus the template tokens and mask and the SGTM inputs: the RoI memory
  ``temporal`` (1, T, D), T a multiple of roi_size^2, and ``use_temporal`` (1, 1, 1), 1 to use
  it and 0 to track without it (the first frame after a command's box). The memory for the next
  frame is assembled from ``roi`` outside the graph (``jointnlt.next_memory``).

The image encoder is a graph of its own, as the Tracker calls it, rather than part of the step
graphs: fused into the tracking graph, the compact model's frame took the same time on a CPU
(the extra session call costs under 0.1 ms; docs/results.md). A folder holds the graphs and
``manifest.json``: format, preset and model settings, the weights' SHA-256, precision, opset,
and every graph's input and output names, shapes and types and the ops it uses. ``fp16``
graphs are the fp32 trace converted by onnxruntime's float16 tool (weights and arithmetic in
fp16 where it allows; inputs and outputs stay float32); ``bf16`` is not exported.

``export_model`` checks what it wrote: each graph runs on onnxruntime's CPU provider on random
inputs made by the torch model itself, and its outputs must match torch's (``TOLERANCES``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile
import warnings

import numpy as np
import torch
from torch import nn

from nl_tracker_ros.errors import CheckpointError, ConfigError
from nl_tracker_ros.model.config import ModelConfig
from nl_tracker_ros.model.jointnlt import JointNLT, corner_score

log = logging.getLogger(__name__)

FORMAT = 'nl_tracker_ros.onnx'
FORMAT_VERSION = 1
MANIFEST = 'manifest.json'
OPSET = 17
PRECISIONS = ('fp32', 'fp16')
GRAPHS = ('text', 'template', 'image', 'ground', 'track')
HEAD_OUTPUTS = ('box_cxcywh', 'heatmap_tl', 'heatmap_br', 'roi', 'features', 'score')
# Largest |onnxruntime - torch| accepted by the export check, per precision: boxes (normalised
# to the crop, so 1e-4 of its size) absolute; every other output relative to its largest value.
TOLERANCES = {'fp32': {'box': 1e-4, 'other': 1e-3}, 'fp16': {'box': 1e-2, 'other': 5e-2}}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, shape (a str for a varying axis) and element type."""

    name: str
    shape: tuple
    dtype: str      # 'float32', 'int64' or 'bool'

    def text(self) -> str:
        """``name (1, 24, 128) float32``, as error messages name it."""
        dims = ', '.join(str(d) for d in self.shape)
        return f'{self.name} ({dims}) {self.dtype}'


def graph_specs(mc: ModelConfig) -> dict[str, tuple[tuple[TensorSpec, ...],
                                                    tuple[TensorSpec, ...]]]:
    """(inputs, outputs) of every graph for a model of ``mc``: the export's contract."""
    f, i, b = 'float32', 'int64', 'bool'
    n_text, d, s = mc.max_text_len, mc.dim, mc.feat_size
    nt, ns, r = mc.template_tokens, mc.search_tokens, mc.roi_size ** 2
    text = (TensorSpec('text_tokens', (1, n_text, d), f), TensorSpec('text_pad', (1, n_text), b))
    head = (TensorSpec('box_cxcywh', (1, 4), f), TensorSpec('heatmap_tl', (1, s, s), f),
            TensorSpec('heatmap_br', (1, s, s), f), TensorSpec('roi', (1, r, d), f),
            TensorSpec('features', (1, d, s, s), f), TensorSpec('score', (1,), f))
    return {
        'text': ((TensorSpec('input_ids', (1, n_text), i),
                  TensorSpec('attention_mask', (1, n_text), i)),
                 (TensorSpec('text_tokens', (1, n_text, d), f),)),
        'template': ((TensorSpec('image', (1, 3, mc.template_size, mc.template_size), f),),
                     (TensorSpec('tokens', (1, nt, d), f),)),
        'image': ((TensorSpec('image', (1, 3, mc.search_size, mc.search_size), f),),
                  (TensorSpec('tokens', (1, ns, d), f),)),
        'ground': (text + (TensorSpec('image_tokens', (1, ns, d), f),
                           TensorSpec('image_pad', (1, ns), b)), head),
        'track': (text + (TensorSpec('template_tokens', (1, nt, d), f),
                          TensorSpec('template_pad', (1, nt), b),
                          TensorSpec('search_tokens', (1, ns, d), f),
                          TensorSpec('search_pad', (1, ns), b),
                          TensorSpec('temporal', (1, 'memory', d), f),
                          TensorSpec('use_temporal', (1, 1, 1), f)), head),
    }


# ------------------------------------------------------------------------- graph modules


class _Text(nn.Module):
    def __init__(self, model: JointNLT):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        hidden, mask = self.model.text_hidden(input_ids, attention_mask)
        return self.model.project_text(hidden, mask).tokens


class _Image(nn.Module):
    def __init__(self, model: JointNLT):
        super().__init__()
        self.model = model

    def forward(self, image):
        return self.model._encode_image(image)


class _Ground(nn.Module):
    def __init__(self, model: JointNLT):
        super().__init__()
        self.model = model

    def forward(self, text_tokens, text_pad, image_tokens, image_pad):
        m = self.model
        template, template_pad = m.empty_template(image_tokens)
        feats, box, p_tl, p_br = m._relate(text_tokens, text_pad, template, template_pad,
                                           image_tokens, image_pad, None)
        return box, p_tl, p_br, m._roi_tokens(feats, box), feats, corner_score(p_tl, p_br)


class _Track(nn.Module):
    def __init__(self, model: JointNLT):
        super().__init__()
        self.model = model

    def forward(self, text_tokens, text_pad, template_tokens, template_pad, search_tokens,
                search_pad, temporal, use_temporal):
        m = self.model
        feats, box, p_tl, p_br = m._relate(text_tokens, text_pad, template_tokens, template_pad,
                                           search_tokens, search_pad, temporal, use_temporal)
        return box, p_tl, p_br, m._roi_tokens(feats, box), feats, corner_score(p_tl, p_br)


_MODULES = {'text': _Text, 'template': _Image, 'image': _Image, 'ground': _Ground,
            'track': _Track}


# ------------------------------------------------------------------------ sample inputs


def sample_inputs(model: JointNLT, mc: ModelConfig, seed: int = 0, memory_frames: int = 1,
                  use_temporal: float = 1.0) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs of every graph, made by the torch model from random crops and token ids.

    Text with padding, a search crop whose last token rows are padding, and a RoI memory of
    ``memory_frames`` frames; the step graphs get what the torch encoders produce, so the
    check sees activations of the sizes the tracker sees.
    """
    g = torch.Generator().manual_seed(seed)
    n = mc.max_text_len
    ids = torch.randint(1000, 5000, (1, n), generator=g)
    mask = torch.zeros(1, n, dtype=torch.long)
    mask[:, :max(3, n // 3 + seed % 5)] = 1

    def image(size):
        return torch.randn(1, 3, size, size, generator=g)

    template_img, search_img = image(mc.template_size), image(mc.search_size)
    with torch.no_grad():
        text = model.project_text(*model.text_hidden(ids, mask))
        template = model._encode_image(template_img)
        search = model._encode_image(search_img)
    s = mc.feat_size
    search_pad = torch.zeros(1, s, s, dtype=torch.bool)
    search_pad[:, s - 1 - seed % 3:] = True
    template_pad = torch.zeros(1, mc.template_tokens, dtype=torch.bool)
    temporal = torch.randn(1, memory_frames * mc.roi_size ** 2, mc.dim, generator=g)
    text_in = {'text_tokens': text.tokens, 'text_pad': text.pad_mask}
    return {
        'text': {'input_ids': ids, 'attention_mask': mask},
        'template': {'image': template_img},
        'image': {'image': search_img},
        'ground': {**text_in, 'image_tokens': search, 'image_pad': search_pad.flatten(1)},
        'track': {**text_in, 'template_tokens': template, 'template_pad': template_pad,
                  'search_tokens': search, 'search_pad': search_pad.flatten(1),
                  'temporal': temporal,
                  'use_temporal': torch.full((1, 1, 1), float(use_temporal))},
    }


# ------------------------------------------------------------------------------ export


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What ``export_model`` wrote and how its check went."""

    folder: pathlib.Path
    manifest: dict
    max_diff: dict[str, dict[str, float]]   # graph -> output -> max |onnxruntime - torch|


def weights_digest(path: str | os.PathLike | None) -> str:
    """SHA-256 of a weights file ('random' for none): what an export folder is keyed on."""
    if not path:
        return 'random'
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 22), b''):
            h.update(block)
    return h.hexdigest()


def export_model(model: JointNLT, mc: ModelConfig, folder: str | os.PathLike,
                 precision: str = 'fp32', weights: str = '', weights_sha256: str = '',
                 opset: int = OPSET, check: bool = True) -> ExportReport:
    """Write the graphs and ``manifest.json`` of ``model`` (built from ``mc``) to ``folder``.

    ``weights`` (the file the model was loaded from, '' for random weights) and its SHA-256 go
    into the manifest so a tracker can tell which weights the graphs hold. With ``check``, every
    graph is run with onnxruntime and compared with torch (CheckpointError beyond
    ``TOLERANCES``). The folder is written in a temporary sibling and renamed when complete, so
    a reader never sees half an export; an existing folder is replaced.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f'export precision {precision!r}: expected one of {list(PRECISIONS)} '
                          f'(bf16 graphs are not exported)')
    if opset < OPSET:
        raise ConfigError(f'export opset {opset}: expected {OPSET} or newer')
    import onnx

    folder = pathlib.Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{folder.name}-', dir=folder.parent))
    device = next(model.parameters()).device
    model.cpu()         # traced and checked on the CPU, where onnxruntime's check runs too
    try:
        specs = graph_specs(mc)
        inputs = sample_inputs(model, mc)
        graphs = {}
        with _eager_fp32(model):
            for name in GRAPHS:
                path = tmp / f'{name}.onnx'
                _export_graph(_MODULES[name](model).eval(), inputs[name], specs[name], path,
                              opset, name)
                if precision == 'fp16':
                    _to_fp16(path)
                ops = sorted({n.op_type for n in onnx.load(str(path)).graph.node})
                ins, outs = specs[name]
                graphs[name] = {'file': path.name, 'inputs': [_spec_json(s) for s in ins],
                                'outputs': [_spec_json(s) for s in outs], 'ops': ops}
        manifest = {'format': FORMAT, 'version': FORMAT_VERSION, 'preset': mc.name,
                    'model': _config_json(mc), 'weights': str(weights),
                    'weights_sha256': weights_sha256 or weights_digest(weights),
                    'precision': precision, 'opset': opset, 'batch': 1,
                    'torch': torch.__version__, 'onnx': onnx.__version__, 'graphs': graphs}
        diffs = {}
        if check:
            with _eager_fp32(model):
                diffs = check_export(tmp, model, mc, precision)
            manifest['check'] = {'provider': 'CPUExecutionProvider', 'max_diff': diffs}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n')
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        model.to(device)
    return ExportReport(folder, manifest, diffs)


@contextlib.contextmanager
def _eager_fp32(model: JointNLT):
    """Trace the eager fp32 model: no autocast, no compiled steps (restored afterwards)."""
    saved = model.autocast_dtype, model._compiled
    model.autocast_dtype, model._compiled = None, {}
    try:
        yield
    finally:
        model.autocast_dtype, model._compiled = saved


def _export_graph(module: nn.Module, inputs: dict, spec, path: pathlib.Path, opset: int,
                  name: str) -> None:
    from torch.onnx.errors import UnsupportedOperatorError

    ins, outs = spec
    dynamic = {s.name: {k: d for k, d in enumerate(s.shape) if isinstance(d, str)}
               for s in ins if any(isinstance(d, str) for d in s.shape)}
    args = tuple(inputs[s.name] for s in ins)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter('ignore')      # tracer notes on Python-side shape checks
            torch.onnx.export(module, args, str(path), input_names=[s.name for s in ins],
                              output_names=[s.name for s in outs], opset_version=opset,
                              dynamic_axes=dynamic or None, do_constant_folding=True,
                              dynamo=False)
    except UnsupportedOperatorError as exc:
        raise CheckpointError(f'export {name}: unsupported op: '
                              f'{str(exc).splitlines()[0]}') from None


def _to_fp16(path: pathlib.Path) -> None:
    """Convert an fp32 graph in place to fp16 weights and arithmetic, float32 inputs and
    outputs (onnxruntime's converter keeps the ops it knows to need fp32 in fp32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    onnx.save(model, str(path))


def _spec_json(s: TensorSpec) -> dict:
    return {'name': s.name, 'shape': list(s.shape), 'dtype': s.dtype}


def _config_json(mc: ModelConfig) -> dict:
    from nl_tracker_ros.config import to_dict
    return to_dict(mc)


# ------------------------------------------------------------------------------- check


def check_export(folder: str | os.PathLike, model: JointNLT, mc: ModelConfig,
                 precision: str = 'fp32') -> dict[str, dict[str, float]]:
    """Run every graph in ``folder`` with onnxruntime (CPU) and compare with ``model``.

    Inputs from ``sample_inputs`` (two draws: RoI memories of one and of ``memory_frames``
    frames, with and without the temporal clue). Returns graph -> output -> the largest
    difference; raises CheckpointError naming the graph and output beyond ``TOLERANCES``.
    """
    import onnxruntime as ort

    folder = pathlib.Path(folder)
    tol = TOLERANCES[precision]
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    diffs: dict[str, dict[str, float]] = {}
    draws = [sample_inputs(model, mc, 0, 1, 1.0),
             sample_inputs(model, mc, 1, max(1, mc.memory_frames), 1.0),
             sample_inputs(model, mc, 2, 1, 0.0)]
    specs = graph_specs(mc)
    for name in GRAPHS:
        session = open_session(folder / f'{name}.onnx', opts, ['CPUExecutionProvider'])
        module = _MODULES[name](model).eval()
        for inputs in draws if name in ('text', 'track', 'ground') else draws[:1]:
            feed = {s.name: to_numpy(inputs[name][s.name]) for s in specs[name][0]}
            got = session.run(None, feed)
            with torch.inference_mode():
                ref = module(*(inputs[name][s.name] for s in specs[name][0]))
            ref = ref if isinstance(ref, tuple) else (ref,)
            for spec, a, b in zip(specs[name][1], got, ref):
                b = b.float().numpy()
                diff = float(np.abs(a.astype(np.float64) - b).max())
                scale = 1.0 if spec.name == 'box_cxcywh' else max(1.0, float(np.abs(b).max()))
                limit = (tol['box'] if spec.name == 'box_cxcywh' else tol['other']) * scale
                if not diff <= limit:
                    raise CheckpointError(
                        f'export check: {name}.onnx output {spec.name} differs from torch by '
                        f'{diff:.3g} (allowed {limit:.3g} for {precision})')
                key = diffs.setdefault(name, {})
                key[spec.name] = max(key.get(spec.name, 0.0), diff)
    return diffs


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A contiguous CPU array of ``t`` (float tensors as float32)."""
    t = t.detach()
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.float()
    return np.ascontiguousarray(t.cpu().numpy())


def open_session(path: pathlib.Path, options, providers):
    """An onnxruntime session of ``path``; a graph it cannot run is one CheckpointError line
    (an op without an implementation is named as onnxruntime names it)."""
    import onnxruntime as ort

    if not path.is_file():
        raise CheckpointError(f'export folder {path.parent}: {path.name} not found')
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:   # onnxruntime raises its own Fail / NotImplemented / InvalidGraph
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f'export folder {path.parent}: {path.name} does not load in '
                              f'onnxruntime {ort.__version__}: {first}') from None
