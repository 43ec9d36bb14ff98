"""Evaluation: predictions of a trained model, scores, and the statistics that compare them."""
