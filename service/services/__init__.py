"""Use cases: what the API, the worker and the CLI ask the service to do.

One shape, learnt once:

- A use case is a public function ``use_case(rt, ctx, ...)``: the :class:`Runtime` first, then
  the :class:`CallContext` of the caller (background work started by the worker or the CLI, with
  no caller behind it, has no ``ctx``), then its own arguments.
- The use case owns its transaction: it opens ``with rt.uow() as uow:``, commits explicitly
  (an uncommitted unit of work rolls back), and never holds one open across an Azure call it
  can make outside it (it opens one before and one after instead).
- Helpers that take a ``uow`` or a ``Session`` (``lookup.visible_tenant``, ``audit.record``,
  ``endpoints.record_observations``, ...) run inside their caller's transaction and do not
  commit unless their docstring says so.
- A view in ``service.api`` parses, makes exactly one use-case call and serializes; it never
  opens a unit of work. The worker and the CLI call use cases the same way.
"""
