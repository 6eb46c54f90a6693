"""The network: plain ``nn.Module``s, no I/O."""

from vidrestore.model.network import CONFIGS, ModelConfig, VidRestoreNet, build_model, config_from_json, config_to_json

__all__ = ["CONFIGS", "ModelConfig", "VidRestoreNet", "build_model", "config_from_json", "config_to_json"]
