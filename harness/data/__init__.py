"""Data: benchmark and probe specs and their files (specs), how examples become token ids (encode), what `validate`
checks, what each candidate reads (examples), the references scored against."""
