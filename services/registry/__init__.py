"""The registry: the projector that folds the stream into PostgreSQL's read models.

What other packages (the API) may use of it is exported here; its modules are its own business.
"""
from services.registry.checkpoint import read_models_version
from services.registry.dead_letters import DeadLetter, list_dead_letters
from services.registry.migrate import migrate
from services.registry.read_your_writes import ProjectionTimeout, wait_until_projected

__all__ = ["DeadLetter", "ProjectionTimeout", "list_dead_letters", "migrate", "read_models_version",
           "wait_until_projected"]
