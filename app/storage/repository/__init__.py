"""Keyword-only data access functions shared by the indexer and the service: the only place SQL is written."""

from app.storage.repository.captions import (
    captions_without_vectors,
    get_captions,
    replace_captions,
)
from app.storage.repository.collections import (
    add_collection_folder,
    collection_folders,
    get_collection,
    get_or_create_collection,
    holding_folder,
    list_collections,
    path_is_under,
)
from app.storage.repository.index_builds import (
    latest_index_builds,
    prune_index_builds,
    record_index_build,
)
from app.storage.repository.photos import (
    count_photos,
    get_photo,
    get_photos,
    photos_by_path,
    photos_with_hashes,
)
from app.storage.repository.search import collection_ids_by_name
from app.storage.repository.tags import (
    ZERO_SHOT_SOURCE_PREFIX,
    photo_ids_with_tags,
    photos_needing_tags,
    replace_zero_shot_tags,
    tag_counts,
    tags_of_photos,
)
from app.storage.repository.vectors import (
    caption_vectors,
    caption_vectors_for_ids,
    embedded_photo_ids,
    from_blobs,
    get_photo_vector,
    hub_offsets_for_ids,
    photo_vectors,
    photo_vectors_for_ids,
    to_blob,
    vector_counts_by_model,
)

__all__ = [
    "ZERO_SHOT_SOURCE_PREFIX",
    "add_collection_folder",
    "collection_folders",
    "caption_vectors",
    "caption_vectors_for_ids",
    "captions_without_vectors",
    "collection_ids_by_name",
    "count_photos",
    "embedded_photo_ids",
    "from_blobs",
    "get_captions",
    "get_collection",
    "get_or_create_collection",
    "get_photo",
    "get_photo_vector",
    "get_photos",
    "holding_folder",
    "hub_offsets_for_ids",
    "latest_index_builds",
    "list_collections",
    "photo_ids_with_tags",
    "photo_vectors",
    "photo_vectors_for_ids",
    "photos_by_path",
    "path_is_under",
    "photos_needing_tags",
    "photos_with_hashes",
    "prune_index_builds",
    "record_index_build",
    "replace_captions",
    "replace_zero_shot_tags",
    "tag_counts",
    "tags_of_photos",
    "to_blob",
    "vector_counts_by_model",
]
