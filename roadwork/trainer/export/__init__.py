"""Export to a Hugging Face model repository, with portable model code."""
