"""Reading and writing video with PyAV: probing, a decoding thread, an encoding/remuxing thread."""

from vidrestore.io.probe import ColourInfo, StreamInfo, VideoInfo, open_input, probe

__all__ = ["ColourInfo", "StreamInfo", "VideoInfo", "open_input", "probe"]
