"""Training and evaluation material made or read into memory, shared by ``train`` and ``evaluate``.

* :mod:`~vidrestore.synth.scenes`: synthetic scenes with exact ground truth (frames, blur, flows) and the
  fixed-seed validation set
* :mod:`~vidrestore.synth.textures`: their textures, procedural or cropped from real images and video frames
* :mod:`~vidrestore.synth.footage`: videos decoded whole into memory (texture frames, training samples)

Nothing is imported here, so ``import vidrestore.synth`` stays light. This package imports nothing from
``train`` or ``evaluate``.
"""
