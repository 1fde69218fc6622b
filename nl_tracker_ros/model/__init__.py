"""The JointNLT network: configuration and presets, the model, checkpoint loading."""
from nl_tracker_ros.model.config import ModelConfig, PRESETS, get_preset
from nl_tracker_ros.model.jointnlt import HeadOutput, JointNLT, TextFeatures, build_model

__all__ = ['ModelConfig', 'PRESETS', 'get_preset', 'HeadOutput', 'JointNLT', 'TextFeatures',
           'build_model']
