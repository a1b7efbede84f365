"""schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS)."""
import schemathesis

# tus bodies are plain bytes under their own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
