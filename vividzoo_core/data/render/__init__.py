"""``vividzoo dataset render``: animated 3D assets rendered with Blender into the dataset format.

``settings`` holds the choices (pure Python), ``batch`` finds assets and runs one ``worker``
process per asset, ``scene`` is the part that runs inside Blender (``bpy``).
"""
