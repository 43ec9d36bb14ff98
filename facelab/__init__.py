"""facelab: the library the pipeline stages call. Importable alone; knows nothing of DVC."""
