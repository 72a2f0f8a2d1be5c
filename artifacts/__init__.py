"""What a run leaves for others to load: the checkpoint file, and the one path from it (or an ONNX
export) to a ready model."""
