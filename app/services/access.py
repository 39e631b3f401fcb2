"""What one request may see: the collections of its API key, and whether it is an admin's.

Passed as data into the services (search filters, photo lookups), so that every path to a photo
applies the same rule: a photo outside the scope is answered exactly as an unknown id."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from app.services.filters import SearchFilters
from app.storage.tables import Photo


@dataclass(frozen=True)
class AccessScope:
    key_name: str | None = None  # None: auth is off (a server bound to a loopback address)
    collection_ids: frozenset[int] | None = None  # None: every collection
    admin: bool = False

    def allows(self, collection_id: int) -> bool:
        return self.collection_ids is None or collection_id in self.collection_ids

    def narrow(self, collection_ids: list[int] | None) -> list[int] | None:
        """The asked-for collections (None: all) within the scope."""
        if self.collection_ids is None:
            return collection_ids
        if collection_ids is None:
            return sorted(self.collection_ids)
        return [cid for cid in collection_ids if cid in self.collection_ids]

    def limit(self, filters: SearchFilters) -> SearchFilters:
        """A search's filters kept within this scope's collections."""
        return replace(filters, within=self.collection_ids)

    @property
    def sees_server_files(self) -> bool:
        """Admins and a loopback server without auth see absolute paths and content hashes; an
        ordinary key sees paths relative to the collection's folder and no hashes."""
        return self.admin or self.key_name is None


# Auth off: every collection, as an admin (only ever on a loopback address).
OPEN_SCOPE = AccessScope(admin=True)


def shown_path(photo: Photo, scope: AccessScope) -> str:
    if scope.sees_server_files:
        return photo.path
    return os.path.join(photo.folder, os.path.basename(photo.path))  # folder: "" at the top
