"""Synthetic language-tracking scenes with exact ground truth (``nl-tracker scenes``).

Targets and distractors (shapes and photo sprites from scikit-image) move over photographs,
with scale change, occluders passing over the target and exits from the view; each sequence
comes with a description that singles the target out in its first frame.
"""
from nl_tracker_ros.scenes.generator import (FrameTruth, ScenePlan, distractor_boxes, distractors,
                                             plan_scene, render_scene)
from nl_tracker_ros.scenes.recipe import PRESETS, RecipeMix, SceneRecipe, get_mix
from nl_tracker_ros.scenes.writer import generate, write_scene

__all__ = ['FrameTruth', 'PRESETS', 'RecipeMix', 'SceneRecipe', 'ScenePlan', 'distractor_boxes',
           'distractors', 'generate', 'get_mix', 'plan_scene', 'render_scene', 'write_scene']
