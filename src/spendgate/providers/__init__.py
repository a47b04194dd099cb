"""What the providers themselves report: clients of their admin usage and cost APIs."""
