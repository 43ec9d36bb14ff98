"""facelab: the DVC pipeline stages (prepare, train, evaluate, report) and the modules they share."""
