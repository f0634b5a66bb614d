"""A processor's metadata, the seed's `Metadata` class as a typed model: what the package's pages,
`datapackage.json` and the gateway's `/processors` routes say about a dataset version."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The two halves of `dataset.version`; both name folders and files of the package layout.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_]*$"
PROCESSOR_PATTERN = r"^[a-z0-9][a-z0-9_]*\.[a-z0-9][a-z0-9_]*$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=63)]


class DataLicense(BaseModel):
    """A licence as the Data Package spec has it: an Open Definition id, where to read it, a title."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Open Definition licence id (`CC-BY-4.0`) or a short name")
    path: str = Field(min_length=1, description="URL of the licence text")
    title: str = Field(min_length=1, description="human-readable title")


class ProcessorMetadata(BaseModel):
    """What a processor (one version of one dataset) declares beside its code; field names as the seed
    project's `/processors` routes send them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name = Field(description="the dataset half of `dataset.version`; names the dataset's folder")
    version: Name = Field(description="the version half of `dataset.version` (`version_1`)")
    description: str = Field(min_length=1, description="what the processor does")
    dataset_name: str = Field(min_length=1, description="the dataset this processor targets")
    data_author: str = ""
    data_title: str = Field(default="", description="one-line title, about 30 characters")
    data_title_long: str = ""
    data_summary: str = Field(default="", description="one to three paragraphs about the dataset")
    data_citation: str = ""
    data_license: DataLicense
    data_origin_url: str = Field(min_length=1, description="where the source data comes from")
    data_formats: list[str] = Field(min_length=1, description="formats of the output files (`GeoTIFF`)")

    @property
    def processor(self) -> str:
        """`dataset.version`, the name the processor is asked for by."""
        return f"{self.name}.{self.version}"

    @property
    def title(self) -> str:
        """The title pages show: the short title, else the long one, else the dataset's name."""
        return self.data_title or self.data_title_long or self.dataset_name
