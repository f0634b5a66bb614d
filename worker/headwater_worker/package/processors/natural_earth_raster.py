"""Natural Earth II with shaded relief (1:50m), or any GeoTIFF given as `source`, cropped to the boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..metadata import DataLicense, ProcessorMetadata
from ..processor import Processor, ProcessorContext, ProvenanceLog
from ..raster import crop_raster
from ..sources import SourceRef

NATURAL_EARTH_SR = SourceRef(
    url="https://naturalearth.s3.amazonaws.com/50m_raster/NE2_50M_SR.zip", member="NE2_50M_SR/NE2_50M_SR.tif"
)


class RasterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: SourceRef = Field(
        default=NATURAL_EARTH_SR, description="the GeoTIFF (or a zip holding it, with `member`) to crop"
    )
    nodata: float | None = Field(
        default=None, description="value of pixels outside the boundary; default the source's nodata"
    )


class Version1(Processor):
    metadata = ProcessorMetadata(
        name="natural_earth_raster",
        version="version_1",
        description="Natural Earth II raster with shaded relief, cropped to the boundary",
        dataset_name="natural_earth_raster",
        data_author="Natural Earth Data",
        data_title="Natural Earth - Raster Shaded Relief",
        data_title_long="Natural Earth II with Shaded Relief, 1:50m",
        data_summary="Natural Earth II is a raster map of the world with idealised land cover, shaded relief "
        "and water bodies, in colour, at 1:50m scale.",
        data_citation="Made with Natural Earth. Free vector and raster map data @ naturalearthdata.com.",
        data_license=DataLicense(
            name="CC-BY-4.0",
            title="Creative Commons Attribution 4.0",
            path="https://creativecommons.org/licenses/by/4.0/",
        ),
        data_origin_url="https://www.naturalearthdata.com/downloads/50m-natural-earth-2/50m-natural-earth-ii-with-shaded-relief/",
        data_formats=["GeoTIFF"],
    )
    options_model = RasterOptions
    options: RasterOptions

    def sources(self) -> list[SourceRef]:
        return [self.options.source]

    def generate(self, context: ProcessorContext) -> ProvenanceLog:
        context.report(5, "fetching the source")
        local = context.fetch(self.options.source)
        context.report(20, "cropping the source")
        output = context.output_file("tif")
        summary = crop_raster(
            self.options.source.gdal_path(local),
            context.boundary.geometry,
            output,
            nodata=self.options.nodata,
            on_fraction=lambda done: context.report(20 + int(done * 60), "cropping the source"),
        )
        context.report(85, "storing the cropped raster")
        context.publish(output)
        return {"source": self.options.source.shown, "raster": summary.as_log()}
