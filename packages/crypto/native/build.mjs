#!/usr/bin/env node
// Builds this package's addon: `node native/build.mjs [--install | --rebuild | --prebuildify ARCH... |
// --check-prebuilds ARCH...]`. The script is @secure-memory/addon-build's, shared by every addon.
import { build } from '@secure-memory/addon-build';

build(new URL('..', import.meta.url));
