"""The base of every config object; its own module so stage configs and the pipeline config import it without a cycle."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every config object: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
