"""LLM induction (issue 6): an OpenAI-compatible model writes RASP, guided by a primer,
demonstrations from the verified library and feedback from rejected attempts.

* ``extract``  the program out of a reply (fenced or not; None when there is no code)
* ``fewshot``  library demonstrations closest to the task
* ``prompt``   the conversation: primer, demonstrations, task, repair turns (texts in ../prompts)
* ``inducer``  sampling rounds and the Inducer protocol
"""

from autoconn.inducers.llm.inducer import LLMInducer, LLMSettings

__all__ = ["LLMInducer", "LLMSettings"]
