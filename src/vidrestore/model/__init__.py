"""The network, the flow-prior network (:mod:`vidrestore.model.prior_net`): plain ``nn.Module``s, no I/O."""

from vidrestore.model.prior_net import (
    ARCH,
    PRIOR_CONFIGS,
    PriorConfig,
    PriorFlows,
    PriorNet,
    build_prior_model,
    prior_config_from_dict,
    prior_config_to_json,
)

__all__ = ["ARCH", "PRIOR_CONFIGS", "PriorConfig", "PriorFlows", "PriorNet", "build_prior_model",
           "prior_config_from_dict", "prior_config_to_json"]
