"""The DVC stage entry points: prepare, train, evaluate, report. Each is a short main() over the facelab library."""
