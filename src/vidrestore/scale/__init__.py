"""Many videos and long videos: chunks at key frames, a job manifest for resuming, workers on Ray.

Decode, model and encode stay where they are (:mod:`vidrestore.pipeline`): a chunk is one ``pipeline.run``
over a range of frames, and the chunks of a file are joined by stream copy (:mod:`vidrestore.io.join`).
"""
