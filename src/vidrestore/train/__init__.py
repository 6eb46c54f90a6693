"""Training: what a run is asked to do (``config``), samples from footage (``data``), teacher flows for them
(``teacher``), losses (``losses``), the loop with resumable checkpoints (``loop``, ``checkpoint``) and recipes,
chains of runs written down as data (``recipe``). The synthetic scenes are in :mod:`vidrestore.synth`.

Nothing is imported here, so ``import vidrestore.train`` stays light.
"""
