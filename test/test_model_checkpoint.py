"""Weights: official checkpoint layout, strict loading, our safetensors files, parameter count."""
import dataclasses

import pytest
import torch
from timm.models.swin_transformer import get_relative_position_index

from nl_tracker_ros.errors import CheckpointError
from nl_tracker_ros.model import build_model, get_preset
from nl_tracker_ros.model.checkpoint import (from_official, load_bert_dir, load_weights,
                                             save_weights, to_official)
from nl_tracker_ros.model.weights_io import read_file

TINY = get_preset('jointnlt-tiny')
BASE = get_preset('jointnlt-base')


def official_layout(c) -> dict[str, tuple[int, ...]]:
    """Key names and shapes of lib.models.JointNLT's state dict (lizhou-cs/JointNLT), derived
    from its module definitions: Swin stages with pre_stage embed/merge and norm0..2, the BERT
    of pytorch_pretrained_bert without pooler, nn.MultiheadAttention packed projections,
    a STARK corner head with BatchNorm and Embedding tables for the learned tokens."""
    d = {}

    def lin(name, o, i, bias=True):
        d[name + '.weight'] = (o, i)
        if bias:
            d[name + '.bias'] = (o,)

    def ln(name, n):
        d[name + '.weight'] = (n,)
        d[name + '.bias'] = (n,)

    e, ws = c.swin_embed_dim, c.swin_window
    v = 'visual_backbone.stages.'
    d[v + '0.pre_stage.proj.weight'] = (e, 3, 4, 4)
    d[v + '0.pre_stage.proj.bias'] = (e,)
    ln(v + '0.pre_stage.norm', e)
    for i, (depth, heads) in enumerate(zip(c.swin_depths, c.swin_heads)):
        ch = e * 2 ** i
        if i:
            d[f'{v}{i}.pre_stage.reduction.weight'] = (ch, 2 * ch)
            ln(f'{v}{i}.pre_stage.norm', 2 * ch)
        for j in range(depth):
            p = f'{v}{i}.blocks.{j}.'
            ln(p + 'norm1', ch)
            d[p + 'attn.relative_position_bias_table'] = ((2 * ws - 1) ** 2, heads)
            d[p + 'attn.relative_position_index'] = (ws * ws, ws * ws)
            lin(p + 'attn.qkv', 3 * ch, ch)
            lin(p + 'attn.proj', ch, ch)
            ln(p + 'norm2', ch)
            hidden = int(ch * c.swin_mlp_ratio)
            lin(p + 'mlp.fc1', hidden, ch)
            lin(p + 'mlp.fc2', ch, hidden)
        ln(f'visual_backbone.norm{i}', ch)
    b, h, f = 'language_backbone.bert.', c.bert_hidden, c.bert_ffn
    d[b + 'embeddings.word_embeddings.weight'] = (c.bert_vocab, h)
    d[b + 'embeddings.position_embeddings.weight'] = (c.bert_positions, h)
    d[b + 'embeddings.token_type_embeddings.weight'] = (2, h)
    ln(b + 'embeddings.LayerNorm', h)
    for i in range(c.bert_layers):
        p = f'{b}encoder.layer.{i}.'
        for name in ('query', 'key', 'value'):
            lin(p + 'attention.self.' + name, h, h)
        lin(p + 'attention.output.dense', h, h)
        ln(p + 'attention.output.LayerNorm', h)
        lin(p + 'intermediate.dense', f, h)
        lin(p + 'output.dense', h, f)
        ln(p + 'output.LayerNorm', h)
    dim, ffn = c.dim, c.ffn

    def mha(p):
        d[p + '.in_proj_weight'] = (3 * dim, dim)
        d[p + '.in_proj_bias'] = (3 * dim,)
        lin(p + '.out_proj', dim, dim)

    def layer(p, decoder):
        mha(p + 'self_attn')
        if decoder:
            mha(p + 'multihead_attn')
        lin(p + 'linear1', ffn, dim)
        lin(p + 'linear2', dim, ffn)
        for k in range(1, 4 if decoder else 3):
            ln(f'{p}norm{k}', dim)

    for i in range(c.relation_layers):
        layer(f'vl_joint_trans.encoder.layers.{i}.', False)
    for i in range(c.sgtm_encoder_layers):
        layer(f'temporal_decoder.encoder.layers.{i}.', False)
    for i in range(c.sgtm_decoder_layers):
        layer(f'temporal_decoder.decoder.layers.{i}.', True)
    ln('temporal_decoder.decoder.norm', dim)
    for i in range(c.decoder_layers):
        layer(f'target_decoder.layers.{i}.', True)
    ln('target_decoder.norm', dim)
    hc = c.head_channels
    chans = [dim, hc, hc // 2, hc // 4, hc // 8]
    for corner in ('tl', 'br'):
        for k in range(1, 5):
            p = f'box_head.conv{k}_{corner}.'
            d[p + '0.weight'] = (chans[k], chans[k - 1], 3, 3)
            d[p + '0.bias'] = (chans[k],)
            for name in ('weight', 'bias', 'running_mean', 'running_var'):
                d[p + '1.' + name] = (chans[k],)
            d[p + '1.num_batches_tracked'] = ()
        d[f'box_head.conv5_{corner}.weight'] = (1, hc // 8, 1, 1)
        d[f'box_head.conv5_{corner}.bias'] = (1,)
    lin('visu_proj', dim, e * 2 ** (len(c.swin_depths) - 1))
    lin('text_proj', dim, h)
    for name in ('sep_embed', 'temporal_query_embed', 'target_query_embed'):
        d[name + '.weight'] = (1, dim)
    total = c.max_text_len + c.template_tokens + 1 + c.search_tokens
    d['vl_pos_embed.weight'] = (total, dim)
    return d


def random_official_state(c, seed=0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in official_layout(c).items():
        if k.endswith('relative_position_index'):
            state[k] = get_relative_position_index(c.swin_window, c.swin_window)
        elif k.endswith('num_batches_tracked'):
            state[k] = torch.tensor(7)
        else:
            state[k] = torch.randn(shape, generator=g)
    return state


class TrainerSettings:
    """Stands for the pickled trainer objects stored beside 'net' in official checkpoints."""

    def __init__(self):
        self.lr = 1e-4


def test_base_preset_matches_official_size_on_meta():
    model = build_model(BASE, device='meta')
    own = model.state_dict()
    assert len(own) == 953
    params = sum(p.numel() for p in model.parameters())
    assert round(params / 1e6, 1) == 192.9
    layout = official_layout(BASE)
    assert len(layout) == 953
    ours, unmatched = from_official({k: torch.empty(s, device='meta')
                                     for k, s in layout.items()}, BASE)
    assert unmatched == []
    assert set(ours) == set(own)
    assert all(tuple(ours[k].shape) == tuple(own[k].shape) for k in own)


def test_official_checkpoint_loads_with_pickled_extras(tmp_path):
    state = random_official_state(TINY)
    path = tmp_path / 'JointNLT_ep0300.pth.tar'
    torch.save({'net': state, 'settings': TrainerSettings(), 'epoch': 300}, path)
    model = build_model(TINY)
    assert load_weights(model, path, TINY) == 'official'
    back, unmatched = to_official(model.state_dict(), TINY)
    assert unmatched == [] and set(back) == set(state)
    for k, v in state.items():
        assert torch.equal(back[k], v), k


def test_official_mapping_round_trip():
    own = build_model(TINY).state_dict()
    there, left = to_official(own, TINY)
    again, left2 = from_official(there, TINY)
    assert left == [] and left2 == []
    assert set(there) == set(official_layout(TINY))
    assert set(again) == set(own)


def test_checkpoint_of_another_architecture_lists_keys(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'net': {'backbone.conv1.weight': torch.zeros(64, 3, 7, 7),
                        'visual_backbone.layer1.0.conv1.weight': torch.zeros(64, 64, 3, 3)}},
               path)
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model(TINY), path, TINY)
    msg = str(err.value)
    assert str(path) in msg and 'missing' in msg and 'unexpected' in msg
    assert 'backbone.conv1.weight' in msg and '\n' not in msg


def test_official_checkpoint_of_other_dims_lists_shape_mismatches(tmp_path):
    other = dataclasses.replace(TINY, dim=16, heads=2)
    path = tmp_path / 'other.pth.tar'
    torch.save({'net': random_official_state(other)}, path)
    with pytest.raises(CheckpointError, match='shape mismatch'):
        load_weights(build_model(TINY), path, TINY)


def test_own_checkpoint_of_other_preset_is_rejected(tmp_path):
    path = tmp_path / 'tiny.safetensors'
    save_weights(build_model(TINY), path, TINY)
    deeper = dataclasses.replace(TINY, relation_layers=3)
    with pytest.raises(CheckpointError, match='relation.layers.2'):
        load_weights(build_model(deeper), path, deeper)


def test_safetensors_round_trip_gives_same_outputs(tmp_path):
    torch.manual_seed(3)
    a = build_model(TINY).eval()
    path = tmp_path / 'w.safetensors'
    save_weights(a, path, TINY)
    torch.manual_seed(4)
    b = build_model(TINY).eval()
    assert load_weights(b, path, TINY) == 'ours'
    ids = torch.randint(1000, 2000, (1, 8))
    with torch.no_grad():
        outs = [m.ground(m.encode_text(ids, torch.ones_like(ids)),
                         m.encode_image(torch.ones(1, 3, 320, 320))).box_cxcywh for m in (a, b)]
    assert torch.equal(outs[0], outs[1])
    from safetensors import safe_open
    with safe_open(str(path), 'pt') as f:
        assert 'jointnlt-tiny' in f.metadata()['config']


def test_torch_file_with_model_entry_loads(tmp_path):
    a = build_model(TINY)
    path = tmp_path / 'resume.pt'
    torch.save({'model': a.state_dict(), 'step': 3}, path)
    assert load_weights(build_model(TINY), path, TINY) == 'ours'


def test_tampered_window_index_is_rejected(tmp_path):
    state = random_official_state(TINY)
    key = next(k for k in state if k.endswith('relative_position_index'))
    state[key] = state[key].flip(0)
    path = tmp_path / 'bad.pth.tar'
    torch.save({'net': state}, path)
    with pytest.raises(CheckpointError, match='relative_position_index'):
        load_weights(build_model(TINY), path, TINY)


def test_unreadable_and_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        read_file(tmp_path / 'nope.pth')
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match='junk.pth'):
        read_file(junk)
    with pytest.raises(CheckpointError, match='junk.safetensors'):
        read_file(junk.rename(tmp_path / 'junk.safetensors'))
    empty = tmp_path / 'list.pth'
    torch.save([1, 2], empty)
    with pytest.raises(CheckpointError, match='mapping'):
        load_weights(build_model(TINY), empty, TINY)


def test_imagenet_swin_weights_in_microsoft_layout(tmp_path):
    src = build_model(TINY).vision.swin.state_dict()
    ms = {'norm.weight': torch.ones(64), 'head.weight': torch.zeros(10, 64),
          'layers.2.downsample.reduction.weight': torch.zeros(128, 256)}  # beyond our stages
    for k, v in src.items():
        parts = k.split('.')
        if parts[0] == 'layers' and parts[2] == 'downsample':  # ends the previous stage there
            k = '.'.join(['layers', str(int(parts[1]) - 1)] + parts[2:])
        ms[k] = v
    ms['layers.0.blocks.1.attn_mask'] = torch.zeros(4, 49, 49)
    path = tmp_path / 'swin_tiny_test.pth'
    torch.save({'model': ms}, path)
    cfg = dataclasses.replace(TINY, vision_weights=str(path))
    loaded = build_model(cfg).vision.swin.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in src.items())


def test_bert_directory_with_pretraining_heads(tmp_path):
    import json
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel
    bc = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64)
    src = BertModel(bc, add_pooling_layer=True).state_dict()
    state = {'bert.' + k: v for k, v in src.items()}
    state['cls.predictions.bias'] = torch.zeros(100)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / 'model.safetensors'))
    (tmp_path / 'config.json').write_text(json.dumps(bc.to_dict()))
    model = load_bert_dir(tmp_path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, src[k]), k
    (tmp_path / 'config.json').unlink()
    with pytest.raises(CheckpointError, match='config.json'):
        load_bert_dir(tmp_path)
