import { mergeConfig } from 'vitest/config';
import shared from '../../vitest.shared.ts';

// --expose-gc: the fault table settles views the garbage collector may release (tombstones) before
// it compares the process's books.
export default mergeConfig(shared, { test: { execArgv: ['--expose-gc'] } });
