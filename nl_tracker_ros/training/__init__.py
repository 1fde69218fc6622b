"""Training of the joint model: samples from sequences, the two-step loss, optimizer, loop.

The paper's recipe (JointNLT, sec. 3.6): each sample grounds the description on one frame and
then tracks the target in later search crops; GIoU (weight 2) + L1 (weight 5) on every step, all
added. AdamW with learning rate 1e-5 for the vision and language backbones and 1e-4 for the rest,
gradient norm clipped at 0.1. The template is cut around the true box by default, or around the
grounded box as the official code does (``SampleConfig.template_source: grounding``).
Checkpoints resume exactly; ``nl-tracker train`` is the command line.

The lost/re-found parts are fitted here too, each on the frozen joint model or on pixels: the
retrieval switch and window selector (``recovery_fit``, ``recovery_loss``;
``nl-tracker train-recovery``) and the kind classifier (``kinds_fit``; ``nl-tracker
train-kinds``).
"""
from nl_tracker_ros.training.data import Batch, Sample, SampleConfig, SequenceSamples, collate
from nl_tracker_ros.training.loop import TrainConfig, TrainResult, train
from nl_tracker_ros.training.loss import box_loss, giou_loss, joint_loss
from nl_tracker_ros.training.optim import build_optimizer

__all__ = ['Batch', 'Sample', 'SampleConfig', 'SequenceSamples', 'collate', 'TrainConfig',
           'TrainResult', 'train', 'box_loss', 'giou_loss', 'joint_loss', 'build_optimizer']
