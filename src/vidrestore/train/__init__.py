"""Training: synthetic scenes with exact ground truth (``scenes``, ``textures``), samples from footage
(``data``), losses (``losses``), the loop with resumable checkpoints (``loop``, ``checkpoint``).

Nothing is imported here, so ``import vidrestore.train`` stays light.
"""
