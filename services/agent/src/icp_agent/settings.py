"""Settings of the agent service."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from icp_common.settings import ServiceSettings

SCRIPTED_PREFIX = "scripted:"
DEMO_MODEL = "demo"  # the scripted model with the script shipped in the package (offline demos)


class GoogleSettings(BaseSettings):
    """The standard google-genai variables (read by the SDK itself; looked at here only to know
    whether a Gemini model can be called at all)."""

    model_config = SettingsConfigDict(extra="ignore")

    api_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("GOOGLE_API_KEY", "GEMINI_API_KEY"),
        description="Gemini API key (Google AI Studio)",
    )
    use_vertexai: bool = Field(
        False,
        validation_alias=AliasChoices("GOOGLE_GENAI_USE_VERTEXAI"),
        description="Call Gemini through Vertex AI (with GOOGLE_CLOUD_PROJECT / GOOGLE_CLOUD_LOCATION and ADC)",
    )


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERLOPER_AGENT_", extra="ignore")

    model: str = Field(
        "gemini-2.5-flash",
        description=(
            "Model of every assistant agent: a Gemini model name (needs GOOGLE_API_KEY or the Vertex AI "
            "variables), `scripted:<path to a JSON script>` (tests), or `demo` (offline: canned answers). "
            "Empty disables the chat."
        ),
    )
    grpc_timeout_seconds: float = Field(10.0, description="Deadline of each pipelines.v1 call a tool makes")


class Settings(ServiceSettings):
    http_port: int = 8104
    agent: AgentSettings = Field(default_factory=AgentSettings)
    google: GoogleSettings = Field(default_factory=GoogleSettings)

    def model_problem(self) -> str | None:
        """Why the assistant cannot chat (None when a model is configured)."""
        model = self.agent.model.strip()
        if not model:
            return "INTERLOPER_AGENT_MODEL is empty"
        if model == DEMO_MODEL:
            return None
        if model.startswith(SCRIPTED_PREFIX):
            return None if model[len(SCRIPTED_PREFIX) :].strip() else "scripted model without a script path"
        if model.startswith("gemini") and not (self.google.api_key.get_secret_value() or self.google.use_vertexai):
            return "no GOOGLE_API_KEY (or GOOGLE_GENAI_USE_VERTEXAI=true) for the Gemini model"
        return None
