from enum import StrEnum


class KeyScopeEndpointsItem(StrEnum):
    BEDROCK_CONVERSE = "bedrock.converse"
    BEDROCK_INVOKE = "bedrock.invoke"
    CHAT_COMPLETIONS = "chat.completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    GEMINI_GENERATE = "gemini.generate"
    MESSAGES = "messages"

    def __str__(self) -> str:
        return str(self.value)
