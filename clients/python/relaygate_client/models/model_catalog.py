from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.catalog_model import CatalogModel
    from ..models.model_catalog_workspace_aliases import ModelCatalogWorkspaceAliases


T = TypeVar("T", bound="ModelCatalog")


@_attrs_define
class ModelCatalog:
    """
    Attributes:
        models (list[CatalogModel]):
        workspace_aliases (ModelCatalogWorkspaceAliases): the workspace's own model names: alias -> a catalog model or a
            platform alias (they win over the platform's aliases for this workspace's calls)
    """

    models: list[CatalogModel]
    workspace_aliases: ModelCatalogWorkspaceAliases

    def to_dict(self) -> dict[str, Any]:
        models = []
        for models_item_data in self.models:
            models_item = models_item_data.to_dict()
            models.append(models_item)

        workspace_aliases = self.workspace_aliases.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "models": models,
                "workspace_aliases": workspace_aliases,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.catalog_model import CatalogModel  # noqa: PLC0415
        from ..models.model_catalog_workspace_aliases import ModelCatalogWorkspaceAliases  # noqa: PLC0415

        d = dict(src_dict)
        models = []
        _models = d.pop("models")
        for models_item_data in _models:
            models_item = CatalogModel.from_dict(models_item_data)

            models.append(models_item)

        workspace_aliases = ModelCatalogWorkspaceAliases.from_dict(d.pop("workspace_aliases"))

        model_catalog = cls(
            models=models,
            workspace_aliases=workspace_aliases,
        )

        return model_catalog
