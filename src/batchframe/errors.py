"""One exception tree for everything batchframe raises.

::

    BatchframeError
    ├── InputError (also ValueError)       bad frame, template, column or keyword; nothing was sent
    │   ├── TemplateError                  unknown placeholder, attribute access, format specs
    │   └── RequestTooLargeError           one request exceeds what the provider accepts
    ├── ConfigurationError                 unknown model/provider, missing API key, bad setting
    ├── BudgetExceededError                estimate above max_cost; nothing was sent
    ├── ProviderError                      the provider's service said no (SDK errors mapped here)
    │   ├── AuthenticationError            401/403: key missing, wrong or lacking permission
    │   ├── RateLimitError                 429 after the SDK's own retries
    │   ├── ProviderUnavailableError       5xx or connection trouble after retries
    │   └── ProviderRequestError           other 4xx: the request itself was refused
    ├── JobError                           a job cannot go on as asked
    │   ├── JobNotFoundError               no stored job with that id
    │   └── JobBusyError                   another process is driving the job
    └── StoreError                         the local job store is unreadable or inconsistent

Every message is a sentence that says what went wrong and what to do about it. SDK exceptions
never escape: :func:`batchframe.providers.base.map_sdk_error` turns them into ProviderError
subclasses at the boundary, keeping the provider's request id for support tickets.
"""

from __future__ import annotations


class BatchframeError(Exception):
    """Base class of every error batchframe raises on purpose."""


class InputError(BatchframeError, ValueError):
    """The frame, template or a keyword is unusable. Raised before anything is sent."""


class TemplateError(InputError):
    """The prompt template cannot be rendered against this frame."""


class RequestTooLargeError(InputError):
    """A single request is larger than the provider accepts in a batch."""


class ConfigurationError(BatchframeError):
    """A setting, model name, provider or credential is missing or wrong."""


class BudgetExceededError(BatchframeError):
    """The cost estimate is above ``max_cost``; nothing was submitted."""

    def __init__(self, message: str, *, estimate: object | None = None) -> None:
        super().__init__(message)
        self.estimate = estimate


class ProviderError(BatchframeError):
    """The provider refused or failed a control-plane call (upload, create, poll, download)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        return False


class AuthenticationError(ProviderError):
    """The API key is missing, invalid, or lacks permission."""


class RateLimitError(ProviderError):
    """The provider is rate limiting us; try again later."""

    @property
    def retryable(self) -> bool:
        return True


class ProviderUnavailableError(ProviderError):
    """Server errors or connection failures persisted through the SDK's retries."""

    @property
    def retryable(self) -> bool:
        return True


class ProviderRequestError(ProviderError):
    """The provider rejected the call itself (a 4xx other than auth and rate limits)."""


class JobError(BatchframeError):
    """The job cannot proceed as asked."""


class JobNotFoundError(JobError, KeyError):
    """No stored job has that id."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class JobBusyError(JobError):
    """Another live process holds the job's lock and is driving it."""


class StoreError(BatchframeError):
    """The job store is unreadable, locked or inconsistent."""
