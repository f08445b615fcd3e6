"""batchframe: run a pandas DataFrame through provider batch APIs at half price.

    import batchframe
    out = df.llm.batch("Classify: {review}", model="gpt-4o-mini", output="sentiment")

Importing this package registers the ``DataFrame.llm`` accessor.
"""

from . import accessor as _accessor  # noqa: F401  (registers DataFrame.llm)
from .errors import (
    AuthenticationError,
    BatchframeError,
    BudgetExceededError,
    ConfigurationError,
    InputError,
    JobBusyError,
    JobError,
    JobNotFoundError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    RateLimitError,
    RequestTooLargeError,
    StoreError,
    TemplateError,
)
from .estimate import Estimate, set_price
from .estimate.actual import CostSummary
from .events import Event, JobSnapshot, Observer
from .job import BatchJob, attach, jobs
from .pilot import Pilot

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BatchJob",
    "BatchframeError",
    "BudgetExceededError",
    "ConfigurationError",
    "CostSummary",
    "Estimate",
    "Event",
    "InputError",
    "JobBusyError",
    "JobError",
    "JobNotFoundError",
    "JobSnapshot",
    "Observer",
    "Pilot",
    "ProviderError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "RateLimitError",
    "RequestTooLargeError",
    "StoreError",
    "TemplateError",
    "__version__",
    "attach",
    "jobs",
    "set_price",
]
