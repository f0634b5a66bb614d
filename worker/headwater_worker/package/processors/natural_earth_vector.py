"""Natural Earth roads (1:10m), or any vector layer given as `source`, clipped to the boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..metadata import DataLicense, ProcessorMetadata
from ..processor import Processor, ProcessorContext, ProvenanceLog
from ..sources import SourceRef
from ..vector import clip_vector

NATURAL_EARTH_ROADS = SourceRef(
    url="https://naturalearth.s3.amazonaws.com/10m_cultural/ne_10m_roads.zip", member="ne_10m_roads.shp"
)


class VectorOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceRef = Field(
        default=NATURAL_EARTH_ROADS,
        description="the GeoPackage, GeoJSON or Shapefile (or a zip holding it, with `member`) to clip",
    )
    layer: str | None = Field(default=None, description="the source's layer to clip; default its first")


class Version1(Processor):
    metadata = ProcessorMetadata(
        name="natural_earth_vector",
        version="version_1",
        description="Natural Earth roads, clipped to the boundary",
        dataset_name="natural_earth_vector_roads",
        data_author="Natural Earth Data",
        data_title="Natural Earth - Roads",
        data_title_long="Natural Earth roads, 1:10m cultural vectors",
        data_summary="Major roads of the world at 1:10m scale, with their type and continent.",
        data_citation="Made with Natural Earth. Free vector and raster map data @ naturalearthdata.com.",
        data_license=DataLicense(
            name="Natural Earth",
            title="Natural Earth",
            path="https://www.naturalearthdata.com/about/terms-of-use/",
        ),
        data_origin_url="https://www.naturalearthdata.com/downloads/10m-cultural-vectors/roads/",
        data_formats=["GeoPackage"],
    )
    options_model = VectorOptions
    options: VectorOptions

    def sources(self) -> list[SourceRef]:
        return [self.options.source]

    def generate(self, context: ProcessorContext) -> ProvenanceLog:
        context.report(5, "fetching the source")
        local = context.fetch(self.options.source)
        context.report(20, "clipping the features")
        output = context.output_file("gpkg")
        summary = clip_vector(
            self.options.source.gdal_path(local),
            context.boundary.geometry,
            output,
            layer=self.options.layer,
            on_fraction=lambda done: context.report(20 + int(done * 60), "clipping the features"),
        )
        context.report(85, "storing the clipped features")
        context.publish(output)
        return {"source": self.options.source.shown, "vector": summary.as_log()}
