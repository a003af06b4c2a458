import { api } from "./api.ts";
import type { Loaded } from "./ui.tsx";
import { useLoad } from "./ui.tsx";

/** Every region, as the public route lists them (anyone may read it). */
export interface RegionEntry {
	id: string;
	name: string;
	status: string;
}

export const regionList = () => api<RegionEntry[]>("GET", "/api/v1/regions");

export function useRegions(): Loaded<RegionEntry[]> {
	return useLoad(regionList, []);
}

/** A region picker; `any` adds a first choice of no region in particular. */
export function RegionSelect({ name, value, onChange, any }: { name: string; value: string; onChange(id: string): void; any?: string }) {
	const regions = useRegions();
	return (
		<label>
			Region
			<select name={name} value={value} onChange={e => onChange(e.currentTarget.value)}>
				{any === undefined ? null : <option value="">{any}</option>}
				{(regions.data ?? []).map(r => (
					<option key={r.id} value={r.id}>
						{r.id}
					</option>
				))}
			</select>
		</label>
	);
}
