"""Collections and the folders indexed into them."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.storage.tables import Collection, CollectionFolder


def path_is_under(path: str, folder: str) -> bool:
    """True for the folder itself and anything inside it ("/a/bc" is not under "/a/b")."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def get_collection(session: Session, *, name: str) -> Collection | None:
    return session.scalar(select(Collection).where(Collection.name == name))


def get_or_create_collection(session: Session, *, name: str, root: Path) -> Collection:
    """The named collection; a new one starts from `root` (add_collection_folder registers folders)."""
    collection = get_collection(session, name=name)
    if collection is None:
        collection = Collection(name=name, root=str(root))
        session.add(collection)
        session.flush()
    return collection


def list_collections(session: Session) -> list[Collection]:
    return list(session.scalars(select(Collection).order_by(Collection.name)))


def collection_folders(session: Session, *, collection_id: int) -> list[str]:
    query = select(CollectionFolder.path).where(CollectionFolder.collection_id == collection_id)
    return list(session.scalars(query.order_by(CollectionFolder.path)))


def holding_folder(registered: list[str], path: str) -> str | None:
    """The registered folder that `path` is inside of (or is), if any."""
    return next((known for known in registered if path_is_under(path, known)), None)


def add_collection_folder(session: Session, *, collection: Collection, folder: Path) -> str:
    """Register `folder` in the collection and return the registered folder that holds it: an
    already registered parent, or `folder` itself, which then replaces its registered sub-folders."""
    path = str(folder)
    registered = collection_folders(session, collection_id=collection.id)
    holder = holding_folder(registered, path)
    if holder is None:
        nested = [known for known in registered if path_is_under(known, path)]
        session.execute(
            delete(CollectionFolder).where(
                CollectionFolder.collection_id == collection.id, CollectionFolder.path.in_(nested)
            )
        )
        session.add(CollectionFolder(collection_id=collection.id, path=path))
        holder = path
    kept = [known for known in registered if not path_is_under(known, holder)] + [holder]
    if not any(path_is_under(collection.root, known) for known in kept):
        collection.root = holder  # its first folder was absorbed into a parent (or never registered)
    session.flush()
    return holder
