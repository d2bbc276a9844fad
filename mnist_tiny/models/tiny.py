"""Our own tiny models (the parameter frontier of issue 4) register here."""
