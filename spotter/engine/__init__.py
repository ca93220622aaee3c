"""The problem-agnostic engine: config → folds → fit one fold on Accelerate → out-of-fold predictions."""
