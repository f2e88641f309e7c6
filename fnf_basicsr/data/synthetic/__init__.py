"""Synthetic flash/no-flash scenes: a small ray caster that writes the FAID file format.

The default data when FAID is absent. Each scene is a room (back wall, floor, side walls,
ceiling) with boxes and spheres at random places, so the images have real depth
discontinuities, occlusions and cast shadows rather than noise on a picture. Surfaces carry
albedo textures from photographs bundled with scikit-image and procedural ones (stripes,
checkers, value noise), mapped by surface coordinates.

Two lightings are rendered from the same geometry, matching what FAID holds:

* ambient: a dim, warm (tungsten-colored) area lamp off the camera axis with soft shadows and
  inverse-square falloff, plus a low fill light darkened near contacts (ambient occlusion);
* flash-only: a cold point light a few centimetres beside the lens, with inverse-square falloff,
  a beam that weakens off axis, Lambertian plus Blinn-Phong specular reflection, and the thin
  hard shadows that the small offset casts.

Colors are defined in linear sRGB. Each scene draws a plausible camera (an XYZ->camera matrix
near a real camera's, and a calibration illuminant) and stores camera RGB made through the inverse
of :func:`fnf_basicsr.utils.rendering.render_srgb`'s color path, so rendering a stored image gives
back the designed colors. Both images are exposed independently (FAID's pairs are well exposed),
blurred slightly like a lens, and quantised to 16 bits by :func:`fnf_basicsr.data.faid.write_faid_pair`.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives bit-identical
files, and the splits use disjoint seed ranges (:data:`SPLIT_SEED_OFFSETS`).

The package, by job: :mod:`.scenes` draws a scene from a seed (room, objects, lights, camera),
with the shapes of :mod:`.geometry` and the textures of :mod:`.materials`; :mod:`.render` ray-casts
it to the two camera images; :mod:`.splits` renders numbered scenes into a FAID folder (resumably)
and builds the cached dataset folder that training reads; :mod:`.captures` degrades a test scene as a capture.
"""
from fnf_basicsr.data.synthetic.captures import simulated_test_capture
from fnf_basicsr.data.synthetic.geometry import Box, RoomPlane, Sphere
from fnf_basicsr.data.synthetic.materials import Material
from fnf_basicsr.data.synthetic.render import (RenderResult, blinn_phong, lamp_emission, point_light_irradiance, render,
                                               render_scene)
from fnf_basicsr.data.synthetic.scenes import Scene, cct_to_linear_srgb, sample_scene
from fnf_basicsr.data.synthetic.splits import SPLIT_SEED_OFFSETS, ensure_synthetic_dataset, generate_split, scene_name

__all__ = ['Box', 'Material', 'RenderResult', 'RoomPlane', 'SPLIT_SEED_OFFSETS', 'Scene', 'Sphere', 'blinn_phong',
           'cct_to_linear_srgb', 'ensure_synthetic_dataset', 'generate_split', 'lamp_emission',
           'point_light_irradiance', 'render', 'render_scene', 'sample_scene', 'scene_name', 'simulated_test_capture']
