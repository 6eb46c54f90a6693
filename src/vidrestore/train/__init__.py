"""Training the flow-prior network: a recipe (``recipes/prior-*.toml``) -> the resumable loop
(``prior_loop``, with ``checkpoint``), its samples (``prior_data``) and losses (``losses``). The synthetic
scenes are in :mod:`vidrestore.synth`.

Nothing is imported here, so ``import vidrestore.train`` stays light.
"""
